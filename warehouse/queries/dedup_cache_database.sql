-- The file of the database a connection works in, when it is a DuckDB file (flows/warehouse/keycache.py keeps its lookup
-- cache beside it); no row for a lake or an in-memory database.
select path
from duckdb_databases()
where database_name = current_database() and type = 'duckdb' and path is not null and path <> ''
