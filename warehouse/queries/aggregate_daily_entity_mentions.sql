-- The daily_entity_mentions figures of the articles in agg_articles and their links in agg_links (temp views
-- set by flows/warehouse/aggregates.py: a batch, some stored articles, or all of them).
select cast(coalesce(a.published_at, a.fetched_at, a.loaded_at) at time zone 'UTC' as date) as day, l.entity_id,
       sum(l.mentions)::bigint as mentions, count(*) as articles
from agg_links l
join agg_articles a using (article_id)
group by all
