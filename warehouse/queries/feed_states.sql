-- Per-feed state for the next fetch. A feed whose last successful fetch belongs to a run that died
-- (abandoned, or still marked running) comes back without validators and schedule: that run may have stored
-- the feed's state but not all its articles, and a conditional GET would answer 304 and hide them for good.
with last_ok as (
    select feed, arg_max(run_id, fetched_at) as run_id
    from feed_fetches
    where outcome in ('ok', 'not_modified', 'unchanged')
    group by feed
),
died as (
    select l.feed
    from last_ok l
    join runs r using (run_id)
    where r.status in ('abandoned', 'running')
)
select f.* replace (
    case when d.feed is null then f.etag end as etag,
    case when d.feed is null then f.last_modified end as last_modified,
    case when d.feed is null then f.body_hash end as body_hash,
    case when d.feed is null then f.next_fetch_at end as next_fetch_at
)
from feeds f
left join died d using (feed)
