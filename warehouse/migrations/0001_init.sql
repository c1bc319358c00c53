-- newsflow warehouse, first version. Documented column by column in docs/schema.md.
-- Keys are natural (URLs, feed names) or stable 64-bit hashes of them, so every load is an idempotent upsert.

create table runs (
    run_id            varchar primary key,      -- uuid of the run (the Prefect flow run id when there is one)
    flow              varchar not null,         -- ingest | reload_seeds | reprocess | demo
    started_at        timestamptz not null,
    finished_at       timestamptz,
    status            varchar not null,         -- running | completed | staged | failed
    parameters        json,
    feeds_total       integer default 0,
    feeds_ok          integer default 0,
    feeds_not_modified integer default 0,
    feeds_failed      integer default 0,
    feeds_skipped     integer default 0,        -- backed off or disabled
    entries_seen      integer default 0,
    entries_new       integer default 0,
    pages_fetched     integer default 0,
    pages_failed      integer default 0,
    articles_new      integer default 0,
    fallbacks         integer default 0,
    duplicates_exact  integer default 0,
    duplicates_near   integer default 0,
    entity_mentions   integer default 0,
    batches_staged    integer default 0,        -- batches left in staging (warehouse locked)
    message           varchar
);

create table feeds (
    feed                 varchar primary key,   -- the name in config
    url                  varchar not null,      -- current URL (moved by permanent redirects)
    configured_url       varchar not null,
    tags                 varchar[],
    title                varchar,
    etag                 varchar,
    last_modified        varchar,
    body_hash            varchar,
    last_fetch_at        timestamptz,
    last_success_at      timestamptz,
    last_status          integer,
    last_error           varchar,
    consecutive_failures integer not null default 0,
    next_fetch_at        timestamptz,
    disabled             boolean not null default false,
    disabled_reason      varchar,
    updated_at           timestamptz
);

create table feed_fetches (
    fetch_id      varchar primary key,          -- run_id || ':' || feed
    run_id        varchar not null,
    feed          varchar not null,
    url           varchar not null,
    final_url     varchar,
    http_status   integer,
    bytes         bigint,
    duration_ms   double,
    entries       integer,
    new_entries   integer,
    outcome       varchar not null,             -- ok | not_modified | unchanged | failed | skipped
    error         varchar,                      -- short code: http_404, timeout, not_a_feed, ...
    error_detail  varchar,
    fetched_at    timestamptz not null
);

create table entries (
    feed          varchar not null,
    guid          varchar not null,
    url           varchar,                      -- normalised link; joins articles.url / duplicates.url
    title         varchar,
    summary       varchar,
    published_at  timestamptz,
    author        varchar,
    first_seen_at timestamptz not null,
    first_run_id  varchar not null,
    primary key (feed, guid)
);

create table articles (
    article_id        bigint primary key,       -- hash of url
    url               varchar not null unique,  -- normalised entry link, or seed:<file> for seeds
    canonical_url     varchar,
    final_url         varchar,
    feed              varchar,                  -- feed that first surfaced it (null for seeds)
    entry_guid        varchar,
    title             varchar,
    author            varchar,
    published_at      timestamptz,
    published_source  varchar,                  -- feed | page | seed | null
    fetched_at        timestamptz,
    language          varchar,
    site_name         varchar,
    text              varchar not null,
    text_hash         varchar not null,
    is_seed           boolean not null default false,
    seed_file         varchar,
    seed_file_hash    varchar,
    body_source       varchar not null,         -- extracted | feed_summary | seed
    fallback_reason   varchar,
    http_status       integer,
    extractor         varchar,
    extractor_version varchar,
    extractor_options json,
    ner_pipeline      varchar,
    n_shingles        integer not null,
    n_samples         integer not null,
    run_id            varchar not null,
    loaded_at         timestamptz not null
);

create table duplicates (
    url           varchar primary key,          -- the copy that was not stored
    feed          varchar,
    entry_guid    varchar,
    title         varchar,
    duplicate_of  bigint not null,              -- articles.article_id of the original
    method        varchar not null,             -- exact | near
    criterion     varchar not null,             -- text_hash | jaccard | containment
    similarity    double not null,
    jaccard       double,
    containment   double,
    text_hash     varchar,
    seen_at       timestamptz not null,
    run_id        varchar not null
);

create table entities (
    entity_id     bigint primary key,           -- hash of (label, name)
    name          varchar not null,
    label         varchar not null,
    first_seen_at timestamptz not null,
    unique (name, label)
);

create table article_entities (
    article_id    bigint not null,
    entity_id     bigint not null,
    mentions      integer not null,
    primary key (article_id, entity_id)
);

create table page_fetches (
    url           varchar primary key,          -- last attempt per article URL
    feed          varchar,
    run_id        varchar not null,
    http_status   integer,
    final_url     varchar,
    content_type  varchar,
    bytes         bigint,
    duration_ms   double,
    outcome       varchar not null,             -- extracted | fallback | failed | duplicate
    error         varchar,
    error_detail  varchar,
    fetched_at    timestamptz not null
);

create table raw_pages (
    url           varchar primary key,
    fetched_at    timestamptz not null,
    encoding      varchar not null,             -- zlib
    html          blob not null
);

-- Dedup index: LSH buckets of each article's MinHash, and a 1-in-N sample of its shingle hashes.
create table lsh_buckets (
    band          smallint not null,
    bucket        bigint not null,
    article_id    bigint not null
);

create table shingle_samples (
    hash          bigint not null,
    article_id    bigint not null
);
