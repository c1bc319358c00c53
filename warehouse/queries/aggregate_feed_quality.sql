-- The feed_quality figures of the articles in agg_articles (a temp view set by flows/warehouse/aggregates.py).
select coalesce(feed, 'seed corpus') as feed, count(*) as articles, count(access) as assessed,
       count(*) filter (where access = 'paywalled') as paywalled, count(*) filter (where is_teaser) as teasers,
       count(is_teaser) as teaser_assessed, count(*) filter (where is_consent_page) as consent_pages
from agg_articles
group by all
