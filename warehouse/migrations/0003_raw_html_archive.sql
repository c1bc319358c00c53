-- Raw HTML moves out of the DuckDB file into Parquet archives beside it (<warehouse stem>.raw/<day>/<batch>.parquet):
-- at 100k articles ~1.2 GB of compressed pages made each load's closing checkpoint take ~30 s instead of ~5 s,
-- holding the file lock all that time. The table keeps only a pointer per URL.
-- raw_pages stays, no longer written: rows already in it remain readable (flows/warehouse/archive.py falls back to it)
-- and drain through raw_html_retention_days; copying them out would not fit in a migration's transaction.
create table raw_archive (
    url           varchar primary key,
    fetched_at    timestamptz,
    archive_file  varchar not null,             -- path relative to the raw folder: <YYYY-MM-DD>/<batch_id>.parquet
    bytes         bigint                        -- compressed size of the page in the archive
);
