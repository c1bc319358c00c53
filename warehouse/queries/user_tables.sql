-- Tables and views in the main schema of the open database (a newsflow warehouse has schema_migrations).
select table_name
from information_schema.tables
where table_catalog = current_database() and table_schema = 'main'
order by table_name
