-- The statement that creates a table of the warehouse as it stands now (columns added by later migrations, defaults
-- and keys included), from DuckDB's catalog: the roll-up (flows/warehouse/rollup.py) creates a table again from it.
select sql
from duckdb_tables()
where database_name = current_database() and schema_name = 'main' and table_name = $table
