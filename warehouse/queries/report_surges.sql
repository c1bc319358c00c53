-- The week's surges: entities whose mentions on a day of the last 7 days (ending on the latest tagged day) stand
-- furthest above their trailing 7-day baseline; each entity once, on its strongest day. The entity_surges view's
-- figures, from the 14 days of daily_entity_mentions the week and its baselines need (migration 0011).
with bounds as (
    select max(day) as last_day from daily_entity_mentions
),
candidates as (  -- only an entity with $min_mentions on a day of the week can be shown
    select distinct d.entity_id
    from daily_entity_mentions d, bounds b
    where d.day > b.last_day - 7 and d.mentions >= $min_mentions
),
recent as (
    select d.entity_id, d.day, d.mentions
    from daily_entity_mentions d, bounds b
    where d.day > b.last_day - 14 and d.entity_id in (select entity_id from candidates)
),
baseline as (
    select *,
           coalesce(sum(mentions) over (
               partition by entity_id order by day
               range between interval 7 days preceding and interval 1 day preceding
           ), 0) / 7.0 as baseline_7d
    from recent
),
scored as (
    select entity_id, day, mentions,
           round(baseline_7d, 3) as baseline_7d,
           round((mentions + 1) / (baseline_7d + 1), 3) as surge_ratio
    from baseline
),
week as (
    select e.name, e.label, s.day, s.mentions, s.baseline_7d, s.surge_ratio
    from scored s
    join entities e using (entity_id), bounds b
    where s.day > b.last_day - 7 and s.mentions >= $min_mentions
    qualify row_number() over (partition by e.name, e.label order by s.surge_ratio desc, s.day desc) = 1
)
select * from week
order by surge_ratio desc, mentions desc, name
limit $limit
