-- The old feed_fetches rows (temp table rollup_old) added to their feed's and day's summary.
merge into feed_fetch_days t
using (
    select feed, (fetched_at at time zone 'UTC')::date as day, count(*) as fetches,
           count(*) filter (where outcome = 'ok') as ok,
           count(*) filter (where outcome = 'not_modified') as not_modified,
           count(*) filter (where outcome = 'unchanged') as unchanged,
           count(*) filter (where outcome = 'failed') as failed,
           count(*) filter (where outcome = 'skipped') as skipped,
           coalesce(sum(entries), 0)::bigint as entries, coalesce(sum(new_entries), 0)::bigint as new_entries,
           coalesce(sum(bytes), 0)::bigint as bytes, coalesce(sum(duration_ms), 0)::double as duration_ms,
           min(fetched_at) as first_fetched_at, max(fetched_at) as last_fetched_at
    from rollup_old
    group by all
) d
on t.feed = d.feed and t.day = d.day
when matched then update set
    fetches = t.fetches + d.fetches, ok = t.ok + d.ok, not_modified = t.not_modified + d.not_modified,
    unchanged = t.unchanged + d.unchanged, failed = t.failed + d.failed, skipped = t.skipped + d.skipped,
    entries = t.entries + d.entries, new_entries = t.new_entries + d.new_entries, bytes = t.bytes + d.bytes,
    duration_ms = t.duration_ms + d.duration_ms, first_fetched_at = least(t.first_fetched_at, d.first_fetched_at),
    last_fetched_at = greatest(t.last_fetched_at, d.last_fetched_at)
when not matched then insert by name
