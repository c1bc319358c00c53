-- prior_7d (the entity's mentions on the 7 days before) of the daily_entity_mentions rows a change may have moved:
-- each entity of agg_touched (the (day, entity) keys a load or a removal changed; a temp table that
-- flows/warehouse/aggregates.py fills) on its touched day and the 7 days after. Only the days from the earliest
-- touched one, less 7, to the latest, plus 7, are read: a range on `day`, by which zone maps skip older row groups.
with window_rows as (
    select m.day, m.entity_id, m.mentions
    from daily_entity_mentions m
    where m.day between (select min(day) - 7 from agg_touched) and (select max(day) + 7 from agg_touched)
      and m.entity_id in (select entity_id from agg_touched)
),
moved as (
    select distinct m.day, m.entity_id
    from window_rows m
    join agg_touched t on t.entity_id = m.entity_id and m.day between t.day and t.day + 7
)
select r.day, r.entity_id, coalesce(sum(p.mentions), 0)::bigint as prior_7d
from moved r
left join window_rows p on p.entity_id = r.entity_id and p.day between r.day - 7 and r.day - 1
group by all
