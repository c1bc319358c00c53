-- Daily summaries of the bookkeeping rows older than [maintenance] rollup_after_days, written by the maintenance
-- flow's roll-up (flows/warehouse/rollup.py), which deletes the detailed rows in the same transaction. A summary
-- row only ever grows: a later roll-up adds the rows that became old since (MERGE), so it is idempotent.

-- feed_fetches, per feed and day (UTC) of fetched_at.
create table feed_fetch_days (
    feed          varchar not null,
    day           date not null,
    fetches       bigint not null,              -- rows rolled up
    ok            bigint not null,
    not_modified  bigint not null,
    unchanged     bigint not null,
    failed        bigint not null,
    skipped       bigint not null,
    entries       bigint not null,              -- sum of entries
    new_entries   bigint not null,              -- sum of new_entries
    bytes         bigint not null,              -- sum of bytes
    duration_ms   double not null,              -- sum of duration_ms
    first_fetched_at timestamptz not null,
    last_fetched_at  timestamptz not null,
    primary key (feed, day)
);

-- check_results, per check and day of checked_at.
create table check_result_days (
    check_name     varchar not null,
    day            date not null,
    checks         bigint not null,             -- times the check ran
    failed         bigint not null,             -- of which it returned rows (or could not run)
    max_offending_rows bigint not null,
    duration_ms    double not null,             -- sum
    primary key (check_name, day)
);

-- runs, per day of started_at, flow and status.
create table run_days (
    day              date not null,
    flow             varchar not null,
    status           varchar not null,
    runs             bigint not null,
    duration_s       double not null,           -- sum of finished_at - started_at
    feeds_ok         bigint not null,
    feeds_failed     bigint not null,
    entries_new      bigint not null,
    pages_fetched    bigint not null,
    articles_new     bigint not null,
    duplicates_exact bigint not null,
    duplicates_near  bigint not null,
    entity_mentions  bigint not null,
    primary key (day, flow, status)
);
