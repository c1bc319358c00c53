-- Per feed, the share of stored articles that are paywalled, teasers or consent pages (flows/text/quality.py),
-- among those assessed (articles stored before migration 0009 are not); feeds with the most flagged first.
-- From feed_quality (one row per feed, kept by each load, migration 0011).
select feed, articles, assessed, paywalled, teasers, consent_pages,
       round(100.0 * paywalled / nullif(assessed, 0), 1) as paywalled_pct,
       round(100.0 * teasers / nullif(teaser_assessed, 0), 1) as teaser_pct
from feed_quality
order by paywalled + teasers + consent_pages desc, feed
limit $limit
