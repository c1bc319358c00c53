"""Text work, pure and Prefect-free: extraction, dedup signatures, named entities, the seed corpus."""
