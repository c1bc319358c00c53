-- The week's surges: entities whose mentions on a day of the last 7 days (ending on the latest tagged day) stand
-- furthest above their trailing 7-day baseline; each entity once, on its strongest day.
with bounds as (
    select max(day) as last_day from entity_surges
),
week as (
    select s.name, s.label, s.day, s.mentions, s.baseline_7d, s.surge_ratio
    from entity_surges s, bounds b
    where s.day > b.last_day - 7 and s.mentions >= $min_mentions
    qualify row_number() over (partition by s.name, s.label order by s.surge_ratio desc, s.day desc) = 1
)
select * from week
order by surge_ratio desc, mentions desc, name
limit $limit
