-- feed_fetches rows to roll up (flows/warehouse/rollup.py): fetched before $cutoff, except each feed's latest row
-- (the feed_health view's last attempt) and its latest successful one (feed_states.sql reads its run).
with keep as (
    select fetch_id from feed_fetches
    qualify row_number() over (partition by feed order by fetched_at desc, fetch_id desc) = 1
    union
    select fetch_id from feed_fetches
    where outcome in ('ok', 'not_modified', 'unchanged')
    qualify row_number() over (partition by feed order by fetched_at desc, fetch_id desc) = 1
)
select *
from feed_fetches
where fetched_at < $cutoff and fetch_id not in (select fetch_id from keep)
