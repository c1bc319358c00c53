-- Per-feed state for the next fetch. A feed whose last successful fetch belongs to a run that died
-- (abandoned, or still marked running) comes back without validators and schedule: that run may have stored
-- the feed's state but not all its articles, and a conditional GET would answer 304 and hide them for good.
-- A feed's last successful fetch happened at its `last_success_at` (the state and the fetch row take the same
-- clock reading, flows/run/collect.py), so only fetches from the earliest of those on are read: zone maps skip the
-- older row groups of a table that grows by 9,600 rows a day, where a scan of it all grew every run's start.
with last_ok as (
    select feed, arg_max(run_id, fetched_at) as run_id
    from feed_fetches
    where outcome in ('ok', 'not_modified', 'unchanged')
      and fetched_at >= (select coalesce(min(last_success_at), 'infinity'::timestamptz) from feeds)
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
