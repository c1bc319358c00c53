"""The warehouse: connections, migrations, staging, the loader, the dedup index, checks, archive, export, snapshot."""
