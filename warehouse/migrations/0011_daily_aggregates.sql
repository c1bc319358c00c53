-- Small aggregates the report reads instead of the whole warehouse (issue 23): each load adds its batch's
-- figures in the same transaction (flows/warehouse/aggregates.py), and the paths that remove or retag articles
-- take theirs away, so a report costs the same on day 365 as on day one. Keys are the report's: an entity
-- (entity_id, a hash of label and name), a feed, a publication day (UTC). Back-filled here in one pass;
-- `aggregates.rebuild_aggregates` recomputes them the same way (the aggregates_match check compares recent days).

create table daily_entity_mentions (
    day        date not null,     -- publication day (UTC): coalesce(published_at, fetched_at, loaded_at)
    entity_id  bigint not null,   -- entities.entity_id
    mentions   bigint not null,   -- sum of article_entities.mentions over that day's articles (seeds included)
    articles   bigint not null,   -- articles of that day that mention the entity
    primary key (day, entity_id)
);

create table entity_totals (
    entity_id  bigint primary key,   -- entities.entity_id (its name and label are read from `entities`)
    mentions   bigint not null,   -- across every stored article (seeds included)
    articles   bigint not null
);

create table daily_feed_articles (
    day        date not null,     -- publication day (UTC): coalesce(published_at, fetched_at)
    feed       varchar not null,  -- the feed that first surfaced the article (seeds are not counted)
    articles   bigint not null,
    fallbacks  bigint not null,   -- stored from the feed's summary (body_source = 'feed_summary')
    primary key (day, feed)
);

create table feed_quality (
    feed            varchar primary key,  -- the feed, or 'seed corpus' for articles without one
    articles        bigint not null,
    assessed        bigint not null,      -- with a quality verdict (access not null; not before migration 0009)
    paywalled       bigint not null,
    teasers         bigint not null,
    teaser_assessed bigint not null,      -- is_teaser not null
    consent_pages   bigint not null
);

create table story_copies (
    article_id     bigint primary key,    -- duplicates.duplicate_of: the stored original
    copies         bigint not null,
    exact_copies   bigint not null,
    near_copies    bigint not null,
    first_seen_at  timestamptz not null,
    last_seen_at   timestamptz not null
);

insert into daily_entity_mentions
select cast(coalesce(a.published_at, a.fetched_at, a.loaded_at) at time zone 'UTC' as date) as day, ae.entity_id,
       sum(ae.mentions)::bigint as mentions, count(*) as articles
from article_entities ae
join articles a using (article_id)
group by all
order by day;

insert into entity_totals
select ae.entity_id, sum(ae.mentions)::bigint as mentions, count(*) as articles
from article_entities ae
join articles a using (article_id)
group by all;

insert into daily_feed_articles
select cast(coalesce(published_at, fetched_at) at time zone 'UTC' as date) as day, feed, count(*) as articles,
       count(*) filter (where body_source = 'feed_summary') as fallbacks
from articles
where not is_seed and feed is not null and coalesce(published_at, fetched_at) is not null
group by all
order by day;

insert into feed_quality
select coalesce(feed, 'seed corpus') as feed, count(*) as articles, count(access) as assessed,
       count(*) filter (where access = 'paywalled') as paywalled, count(*) filter (where is_teaser) as teasers,
       count(is_teaser) as teaser_assessed, count(*) filter (where is_consent_page) as consent_pages
from articles
group by all;

insert into story_copies
select duplicate_of as article_id, count(*) as copies, count(*) filter (where method = 'exact') as exact_copies,
       count(*) filter (where method = 'near') as near_copies, min(seen_at) as first_seen_at,
       max(seen_at) as last_seen_at
from duplicates
group by all;
