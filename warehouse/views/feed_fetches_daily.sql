-- Fetches per feed and day (UTC), the same whether the day's rows are still detailed in feed_fetches or rolled up
-- into feed_fetch_days by the maintenance flow (a day may be both: its latest rows are kept in detail).
with detail as (
    select feed, (fetched_at at time zone 'UTC')::date as day, count(*) as fetches,
           count(*) filter (where outcome = 'ok') as ok,
           count(*) filter (where outcome in ('not_modified', 'unchanged')) as unchanged,
           count(*) filter (where outcome = 'failed') as failed,
           count(*) filter (where outcome = 'skipped') as skipped,
           coalesce(sum(new_entries), 0)::bigint as new_entries
    from feed_fetches
    group by all
),
rolled as (
    select feed, day, fetches, ok, not_modified + unchanged as unchanged, failed, skipped, new_entries
    from feed_fetch_days
),
final as (
    select feed, day, sum(fetches)::bigint as fetches, sum(ok)::bigint as ok, sum(unchanged)::bigint as unchanged,
           sum(failed)::bigint as failed, sum(skipped)::bigint as skipped, sum(new_entries)::bigint as new_entries
    from (select * from detail union all select * from rolled)
    group by feed, day
)
select * from final
order by day, feed
