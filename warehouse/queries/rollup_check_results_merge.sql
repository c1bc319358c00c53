-- The old check_results rows (temp table rollup_old) added to their check's and day's summary.
merge into check_result_days t
using (
    select check_name, (checked_at at time zone 'UTC')::date as day, count(*) as checks,
           count(*) filter (where offending_rows <> 0) as failed,
           max(offending_rows)::bigint as max_offending_rows, coalesce(sum(duration_ms), 0)::double as duration_ms
    from rollup_old
    group by all
) d
on t.check_name = d.check_name and t.day = d.day
when matched then update set
    checks = t.checks + d.checks, failed = t.failed + d.failed,
    max_offending_rows = greatest(t.max_offending_rows, d.max_offending_rows),
    duration_ms = t.duration_ms + d.duration_ms
when not matched then insert by name
