-- Invariant: the report's aggregates (migration 0011, flows/warehouse/aggregates.py) hold what the articles and
-- entity links they sum give, and (in a full pass) each entity-day's baseline (`prior_7d`, 0017) the table's own
-- mentions of the 7 days before, on each one's last 2 days (where loads add; older days are compared by
-- `aggregates.rebuild_aggregates` and tests/test_aggregates.py). Why: each load updates them in its own
-- transaction; a path that stored or removed articles without them would show wrong figures in every report.
-- Cheap at any size: the articles of those days are found by plain range filters on their own date columns (the
-- day is that of the first non-null one), which skip older row groups, and only their links are read: a link is
-- written with its article's load sequence number or a later one (a load stamps both with its own; `reprocess`
-- stamps the links it rewrites with a new one), so the links of those articles lie at or after the smallest
-- number among them, and zone maps skip every older row group of the 20M-row table a year holds.
-- Scoped by $since (flows/warehouse/checks.py) as a whole: only loads write the aggregates, so a pass with no load
-- since this check last held ($until = $since: a quiet run) compares nothing (12 ms, where the two days' 86k
-- entity rows of a year took 0.1-0.3 s of every quiet run); after a load, and in a full pass (-1), the two days.
-- A figure changed by hand since is found by the next full pass (`newsflow check`), as for the other scoped checks.
with bounds as (  -- the last 2 days up to tomorrow (UTC): a far-future day stored earlier does not take their place
    select (select max(day) from daily_feed_articles
            where day <= (now() at time zone 'UTC')::date + 1) - 1 as since,
           (select max(day) from daily_entity_mentions
            where day <= (now() at time zone 'UTC')::date + 1) - 1 as entity_since
),
starts as (  -- midnight UTC of each first day, as timestamps
    select since, since::timestamp at time zone 'UTC' as since_at,
           entity_since, entity_since::timestamp at time zone 'UTC' as entity_since_at
    from bounds
),
recent as (  -- the articles whose day is on or after the earlier of the two first days
    select a.*
    from articles a, starts s
    where a.published_at >= least(s.since_at, s.entity_since_at)
    union all
    select a.*
    from articles a, starts s
    where a.published_at is null and a.fetched_at >= least(s.since_at, s.entity_since_at)
    union all
    select a.*
    from articles a, starts s
    where a.published_at is null and a.fetched_at is null and a.loaded_at >= least(s.since_at, s.entity_since_at)
),
feed_expected as (
    select cast(coalesce(a.published_at, a.fetched_at) at time zone 'UTC' as date) as day, a.feed,
           count(*) as articles, count(*) filter (where a.body_source = 'feed_summary') as fallbacks
    from recent a, starts s
    where not a.is_seed and a.feed is not null
      and cast(coalesce(a.published_at, a.fetched_at) at time zone 'UTC' as date) >= s.since
    group by all
),
feed_stored as (
    select d.day, d.feed, d.articles, d.fallbacks from daily_feed_articles d, starts s where d.day >= s.since
),
entity_articles as (
    select a.article_id, a.load_seq,
           cast(coalesce(a.published_at, a.fetched_at, a.loaded_at) at time zone 'UTC' as date) as day
    from recent a, starts s
    where cast(coalesce(a.published_at, a.fetched_at, a.loaded_at) at time zone 'UTC' as date) >= s.entity_since
),
entity_expected as (
    select a.day, ae.entity_id, sum(ae.mentions)::bigint as mentions, count(*) as articles
    from article_entities ae
    join entity_articles a using (article_id)
    where ae.load_seq >= (select coalesce(min(load_seq), 9223372036854775807) from entity_articles)  -- not NULL: a NULL bound prunes nothing
    group by all
),
entity_stored as (
    select d.day, d.entity_id, d.mentions, d.articles, d.prior_7d
    from daily_entity_mentions d, starts s
    where d.day >= s.entity_since
),
entity_prior_days as (  -- the rows the baselines of those days sum: the table's own, from 7 days before
    select d.day, d.entity_id, d.mentions
    from daily_entity_mentions d, starts s
    where d.day >= s.entity_since - 7
),
entity_prior as (
    select s.day, s.entity_id, s.prior_7d, coalesce(sum(p.mentions), 0) as expected
    from entity_stored s
    left join entity_prior_days p on p.entity_id = s.entity_id and p.day between s.day - 7 and s.day - 1
    group by all
),
final as (
    select 'daily_feed_articles' as aggregate, coalesce(s.day, x.day) as day, coalesce(s.feed, x.feed) as key,
           s.articles as stored_articles, x.articles as expected_articles
    from feed_stored s
    full join feed_expected x on x.day = s.day and x.feed = s.feed
    where s.articles is distinct from x.articles or s.fallbacks is distinct from x.fallbacks
    union all
    select 'daily_entity_mentions', coalesce(s.day, x.day), cast(coalesce(s.entity_id, x.entity_id) as varchar),
           s.articles, x.articles
    from entity_stored s
    full join entity_expected x on x.day = s.day and x.entity_id = s.entity_id
    where s.articles is distinct from x.articles or s.mentions is distinct from x.mentions
    union all
    select 'daily_entity_mentions.prior_7d', day, cast(entity_id as varchar), prior_7d, expected
    from entity_prior
    where prior_7d is distinct from expected
      and $since < 0  -- full passes only: 23 ms of a year's load pass, for a figure only the loader's own rows move
)
select * from final
where $until > $since  -- a pass with no load since the last that held: nothing to compare
order by aggregate, day, key
