-- The entity_totals figures of the links in agg_links whose article is in agg_articles
-- (temp views set by flows/warehouse/aggregates.py).
select l.entity_id, sum(l.mentions)::bigint as mentions, count(*) as articles
from agg_links l
join agg_articles a using (article_id)
group by all
