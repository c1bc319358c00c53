-- The week's surges: entities whose mentions on a day of the last 7 days (ending on the latest tagged day) stand
-- furthest above their trailing 7-day baseline; each entity once, on its strongest day. The entity_surges view's
-- figures, from the 14 days of daily_entity_mentions the week and its baselines need (migration 0011). Days are
-- numbered, and names are read only for the entities that can make the list.
-- The baseline of a day that can score is the sum of its entity's rows of the 7 days before it, joined on the
-- entity: each entity has a few rows in 14 days, so the join is about three rows per scoring day. A RANGE window
-- over every row of the 14 days did the same sums for every row, partition by partition: 2.8 s of the report page
-- at a year's 483k entity-days on a loaded machine (docs/benchmarks.md).
with bounds as (
    select max(day) as last_day from daily_entity_mentions
),
candidates as (  -- only an entity with $min_mentions on a day of the week can be shown
    select distinct d.entity_id
    from daily_entity_mentions d, bounds b
    where d.day > b.last_day - 7 and d.mentions >= $min_mentions
),
recent as (
    select d.entity_id, d.day, d.day - date '1970-01-01' as n, d.mentions
    from daily_entity_mentions d, bounds b
    where d.day > b.last_day - 14 and d.entity_id in (select entity_id from candidates)
),
week as (  -- the days that can score
    select r.*
    from recent r, bounds b
    where r.day > b.last_day - 7 and r.mentions >= $min_mentions
),
baseline as (
    select w.entity_id, w.day, w.mentions, coalesce(sum(p.mentions), 0) / 7.0 as baseline_7d
    from week w
    left join recent p on p.entity_id = w.entity_id and p.n between w.n - 7 and w.n - 1
    group by w.entity_id, w.day, w.mentions
),
scored as (
    select s.entity_id, s.day, s.mentions,
           round(s.baseline_7d, 3) as baseline_7d,
           round((s.mentions + 1) / (s.baseline_7d + 1), 3) as surge_ratio
    from baseline s
    qualify row_number() over (partition by s.entity_id order by surge_ratio desc, s.day desc) = 1
),
cutoff as (  -- the $limit-th best (ratio, mentions): only entities at or above it can be shown, whatever their name
    select min(surge_ratio) as surge_ratio
    from (select surge_ratio from scored order by surge_ratio desc, mentions desc limit $limit)
),
final as (
    select e.name, e.label, s.day, s.mentions, s.baseline_7d, s.surge_ratio
    from scored s
    join entities e using (entity_id), cutoff c
    where s.surge_ratio >= c.surge_ratio
)
select * from final
order by surge_ratio desc, mentions desc, name
limit $limit
