-- The week's surges: entities whose mentions on a day of the last 7 days (ending on the latest tagged day) stand
-- furthest above their trailing 7-day baseline; each entity once, on its strongest day. The entity_surges view's
-- figures, read from daily_entity_mentions, whose rows carry their baseline (`prior_7d`, the mentions of the 7
-- days before; migration 0017, kept by each load): no join and no window over the 14 days' rows at each render.
-- An entity has at most 7 days in the week, so the 7 x $limit best days (with any ties of the last one) hold
-- every entity that can make the list; only those are ranked per entity and named.
with bounds as (
    select max(day) as last_day from daily_entity_mentions
),
scored as (
    select d.entity_id, d.day, d.mentions,
           round(d.prior_7d / 7.0, 3) as baseline_7d,
           round((d.mentions + 1) / (d.prior_7d / 7.0 + 1), 3) as surge_ratio
    from daily_entity_mentions d, bounds b
    where d.day > b.last_day - 7 and d.mentions >= $min_mentions
),
floor as (
    select min(surge_ratio) as surge_ratio
    from (select surge_ratio from scored order by surge_ratio desc limit 7 * $limit)
),
best as (
    select s.*
    from scored s, floor f
    where s.surge_ratio >= f.surge_ratio
    qualify row_number() over (partition by s.entity_id order by s.surge_ratio desc, s.day desc) = 1
)
select e.name, e.label, s.day, s.mentions, s.baseline_7d, s.surge_ratio
from best s
join entities e using (entity_id)
order by surge_ratio desc, mentions desc, name
limit $limit
