-- Stories (issue 25, flows/text/stories.py, docs/stories.md): different articles about the same event, grouped
-- online by the loader in its transaction. A story's id is the article_id of the article that started it.
create table stories (
    story_id      bigint primary key,
    title         varchar,                    -- the title of the article that started it
    first_seen    timestamptz not null,       -- earliest member's time (copies included)
    last_seen     timestamptz not null,       -- latest member's time
    articles      integer not null,           -- members, copies included
    originals     integer not null,           -- members that are stored articles (not copies)
    outlets       integer not null,           -- distinct outlets among the members
    languages     varchar[],
    top_entities  varchar[],                  -- most named entities of its originals, most first
    updated_at    timestamptz not null
);

create table story_articles (
    article_id    bigint primary key,         -- articles.article_id; for a copy, the stable key of its URL
    story_id      bigint not null,
    url           varchar not null,
    title         varchar,
    copy_of       bigint,                     -- a copy's original (duplicates.duplicate_of); null for an article
    outlet        varchar,                    -- the feed, else the site name
    language      varchar,
    published     timestamptz not null,       -- its time on the stories' clock: earliest of published and fetched
    similarity    double not null,            -- the score that placed it (0: it started the story; 1: a copy)
    seq           bigint not null,            -- placing order
    placed_at     timestamptz not null,
    run_id        varchar                     -- the run that placed it
);

-- The clusterer's state, bounded to the stories still open (or open for an article up to a window late): per story
-- its first/last article time, size and centroid (one row, read by id), and its postings (its centroid terms and
-- entities, looked up by key to find candidates). Older stories are pruned from both.
create table story_live (
    story_id      bigint primary key,
    first_article timestamptz not null,
    last_article  timestamptz not null,
    size          integer not null,
    terms         varchar[] not null,         -- centroid terms ...
    weights       bigint[] not null,          -- ... and their quantised weights
    entities      varchar[] not null,         -- entities ...
    entity_counts integer[] not null,         -- ... and how many write-ups name each
    languages     varchar[] not null,         -- languages ...
    language_counts integer[] not null        -- ... and how many write-ups are in each
);

create table story_keys (
    key           varchar not null,           -- a centroid term or an entity name
    kind          varchar not null,           -- t | e
    story_id      bigint not null
);

-- Document frequency of each term over the articles placed (the IDF of an article's terms is taken as of the
-- articles placed before it), and the running counters (one row).
create table story_df (
    term          varchar primary key,
    df            integer not null
);

create table story_state (
    docs          bigint not null,
    seq           bigint not null,
    newest        timestamptz
);
