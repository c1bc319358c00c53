-- The most mentioned entities across stored articles, from entity_totals (kept by each load, migration 0011)
-- rather than the entity_mentions_top view, which sums every entity link. Names are read for the entities tied
-- at or above the $limit-th count only (ties are ordered by name, as the view orders them).
with cutoff as (
    select min(mentions) as mentions
    from (select mentions from entity_totals order by mentions desc limit $limit)
),
leaders as (
    select t.entity_id, t.mentions, t.articles
    from entity_totals t, cutoff c
    where t.mentions >= c.mentions
)
select e.name, e.label, l.mentions, l.articles
from leaders l
join entities e using (entity_id)
order by l.mentions desc, e.name
limit $limit
