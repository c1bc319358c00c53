"""newsflow: scheduled news ingestion into a DuckDB warehouse (docs/architecture.md maps the sub-packages)."""
