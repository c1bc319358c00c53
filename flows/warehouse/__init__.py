"""The warehouse: connections, migrations, staging, the one writer, the dedup index, checks, archive, export."""
