-- The most mentioned entities across stored articles, from entity_totals (kept by each load, migration 0011)
-- rather than the entity_mentions_top view, which sums every entity link.
select name, label, mentions, articles
from entity_totals
order by mentions desc, name
limit $limit
