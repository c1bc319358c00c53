-- Invariant: the report's aggregates (migration 0011, flows/warehouse/aggregates.py) hold what the articles and
-- entity links they sum give, on each one's last 2 days (where loads add; older days are compared by
-- `aggregates.rebuild_aggregates` and tests/test_aggregates.py). Why: each load updates them in its own
-- transaction; a path that stored or removed articles without them would show wrong figures in every report.
with bounds as (
    select (select max(day) from daily_feed_articles) - 1 as since
),
entity_bounds as (
    select (select max(day) from daily_entity_mentions) - 1 as since
),
feed_expected as (
    select cast(coalesce(a.published_at, a.fetched_at) at time zone 'UTC' as date) as day, a.feed,
           count(*) as articles, count(*) filter (where a.body_source = 'feed_summary') as fallbacks
    from articles a, bounds b
    where not a.is_seed and a.feed is not null
      and cast(coalesce(a.published_at, a.fetched_at) at time zone 'UTC' as date) >= b.since
    group by all
),
feed_stored as (
    select d.day, d.feed, d.articles, d.fallbacks from daily_feed_articles d, bounds b where d.day >= b.since
),
entity_articles as (
    select a.article_id, cast(coalesce(a.published_at, a.fetched_at, a.loaded_at) at time zone 'UTC' as date) as day
    from articles a, entity_bounds b
    where cast(coalesce(a.published_at, a.fetched_at, a.loaded_at) at time zone 'UTC' as date) >= b.since
),
entity_expected as (
    select a.day, ae.entity_id, sum(ae.mentions)::bigint as mentions, count(*) as articles
    from article_entities ae
    join entity_articles a using (article_id)
    group by all
),
entity_stored as (
    select d.day, d.entity_id, d.mentions, d.articles from daily_entity_mentions d, entity_bounds b where d.day >= b.since
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
)
select * from final
order by aggregate, day, key
