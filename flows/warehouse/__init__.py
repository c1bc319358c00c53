"""The warehouse: connections, migrations, staging, the one writer, the dedup index, checks, archive, export,
snapshot, backups; the query guard (queryguard: what a user's SQL may run) and the write guard (owned: what the
warehouse owns, and where a command may write a file a user named)."""
