-- Why an article carries no entities (its language has no configured pipeline, its text is empty, ...), so that
-- "every stored article was tagged or says why not" is a check that can hold. Null on a tagged article.
alter table articles add column ner_skip_reason varchar;
-- The warehouse checks (warehouse/checks/*.sql) run at the end of every ingest and by `newsflow check`:
-- how many failed with the run, and one row per check and run with its count of offending rows.
alter table runs add column checks_failed integer;
create table check_results (
    run_id          varchar not null,           -- the ingest run, or `check:<uuid>` for `newsflow check`
    check_name      varchar not null,           -- file name under warehouse/checks without .sql
    offending_rows  bigint not null,            -- 0 when the check holds
    sample          json,                       -- up to 5 offending rows, for the report
    duration_ms     double,
    checked_at      timestamptz not null,
    primary key (run_id, check_name)
);
