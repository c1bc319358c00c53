-- A staged batch the loader could not read (a truncated or empty Parquet file, a schema version from a newer
-- newsflow, a missing run_id) is moved aside into <staging_dir>/quarantine/ so that the batches after it load;
-- one row per batch moved, by the run that moved it. The check `quarantined_batches` fails while its folder
-- is still in quarantine (docs/operations.md says how to deal with one).
create table staged_quarantine (
    batch_id        varchar not null,           -- the batch folder's name in the staging folder
    path            varchar not null,           -- where the folder is now (under <staging_dir>/quarantine/)
    reason          varchar not null,           -- why it could not be read, one line
    quarantined_at  timestamptz not null,
    run_id          varchar                     -- the run (ingest or load) that moved it aside
);
