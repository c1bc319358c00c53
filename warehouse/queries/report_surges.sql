-- The week's surges: entities whose mentions on a day of the last 7 days (ending on the latest tagged day) stand
-- furthest above their trailing 7-day baseline; each entity once, on its strongest day. The entity_surges view's
-- figures, read from daily_entity_mentions, whose rows carry their baseline (`prior_7d`, the mentions of the 7
-- days before; migration 0017, kept by each load): no join and no window over the 14 days' rows at each render.
-- An entity has at most 7 days in the week, so the 7 x $limit best days (with any ties of the last one) hold
-- every entity that can make the list; only those are rounded, ranked per entity and named.
with bounds as (  -- a day later than tomorrow (UTC) ends no window (report_feed_days.sql says why)
    select max(day) as last_day from daily_entity_mentions where day <= (now() at time zone 'UTC')::date + 1
),
week as (  -- `rank_key` is the ratio (m + 1) / (prior / 7 + 1) as 7 (m + 1) / (prior + 7): one division a row
    select d.entity_id, d.day, d.mentions, d.prior_7d, (7 * (d.mentions + 1))::double / (d.prior_7d + 7) as rank_key
    from daily_entity_mentions d, bounds b
    where d.day > b.last_day - 7 and d.day <= b.last_day and d.mentions >= $min_mentions
),
floor as (
    select min(rank_key) as rank_key
    from (select rank_key from week order by rank_key desc limit 7 * $limit)
),
scored as (  -- a margin of 0.002 keeps every day whose ratio, rounded to 3 places, can tie with one kept
    select w.entity_id, w.day, w.mentions,
           round(w.prior_7d / 7.0, 3) as baseline_7d,
           round((w.mentions + 1) / (w.prior_7d / 7.0 + 1), 3) as surge_ratio
    from week w, floor f
    where w.rank_key >= f.rank_key - 0.002
),
best as (
    select *
    from scored
    qualify row_number() over (partition by entity_id order by surge_ratio desc, day desc) = 1
)
select e.name, e.label, s.day, s.mentions, s.baseline_7d, s.surge_ratio
from best s
join entities e using (entity_id)
order by surge_ratio desc, mentions desc, name
limit $limit
