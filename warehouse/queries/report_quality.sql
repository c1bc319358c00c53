-- Per feed, the share of stored articles that are paywalled, teasers or consent pages (flows/text/quality.py),
-- among those assessed (articles stored before migration 0009 are not); feeds with the most flagged first.
select coalesce(feed, 'seed corpus') as feed,
       count(*) as articles,
       count(access) as assessed,
       count(*) filter (where access = 'paywalled') as paywalled,
       count(*) filter (where is_teaser) as teasers,
       count(*) filter (where is_consent_page) as consent_pages,
       round(100.0 * count(*) filter (where access = 'paywalled') / nullif(count(access), 0), 1) as paywalled_pct,
       round(100.0 * count(*) filter (where is_teaser) / nullif(count(is_teaser), 0), 1) as teaser_pct
from articles
group by all
order by paywalled + teasers + consent_pages desc, feed
limit $limit
