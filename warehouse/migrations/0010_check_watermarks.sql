-- Incremental warehouse checks (issue 23): the checks that run with every ingest look only at the rows loaded since
-- the last pass that found them holding, so a run's checks cost what the run brought, not what is stored.
-- `load_sequence` is one counter, taken (+1) by every load transaction that writes articles, duplicates or entity
-- links (flows/warehouse/writer.py); those rows record it in `load_seq`, appended in that order, so zone maps
-- prune `where load_seq > $since` to the row groups written since. The counter is updated inside the load's
-- transaction: a rolled-back load leaves no row and no gap that a later pass could step over, and on a DuckLake two
-- writers taking it conflict, so numbers follow commit order. Rows stored before this migration, and rows written
-- outside a load (`newsflow reprocess`), are 0: only a full pass (`newsflow check`, the maintenance flow) sees them.
create table load_sequence (
    seq           bigint not null
);
insert into load_sequence values (0);
alter table articles add column load_seq bigint default 0;
alter table duplicates add column load_seq bigint default 0;
alter table article_entities add column load_seq bigint default 0;

-- Per check that is scoped by `$since`: the load sequence number up to which it last held (zero offending rows in a
-- full or an incremental pass). A check that fails or cannot run keeps its watermark, so the next incremental pass
-- reports the same rows again until they are repaired. A check with no row here has never held: it reads every row.
create table check_watermarks (
    check_name    varchar not null,             -- file name under warehouse/checks without .sql
    seq           bigint not null,              -- rows with load_seq <= seq were checked and held
    run_id        varchar not null,             -- the pass that moved it (an ingest run, or check:<uuid>)
    checked_at    timestamptz not null
);

-- What each check result covered: `full` (every row) or `incremental` (rows with since_seq < load_seq <=
-- until_seq). Rows stored before this migration are null (they were full passes).
alter table check_results add column scope varchar;
alter table check_results add column since_seq bigint;
alter table check_results add column until_seq bigint;
