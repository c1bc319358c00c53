-- The daily_feed_articles figures of the articles in agg_articles (a temp view set by flows/warehouse/aggregates.py).
-- Seeds have no feed, and an article without any date has no day: neither is counted (the report shows neither).
select cast(coalesce(published_at, fetched_at) at time zone 'UTC' as date) as day, feed, count(*) as articles,
       count(*) filter (where body_source = 'feed_summary') as fallbacks
from agg_articles
where not is_seed and feed is not null and coalesce(published_at, fetched_at) is not null
group by all
