-- One warehouse check's outcome (flows/checks.py); a check re-run under the same run id replaces its row.
-- A merge on the key rather than `insert or replace`, so that it also holds on a DuckLake (no key constraints).
merge into check_results t
using (
    select $run_id::varchar as run_id, $check_name::varchar as check_name, $offending_rows::bigint as offending_rows,
           $sample::json as sample, $duration_ms::double as duration_ms, $checked_at::timestamptz as checked_at
) r
on t.run_id = r.run_id and t.check_name = r.check_name
when matched then update set offending_rows = r.offending_rows, sample = r.sample, duration_ms = r.duration_ms,
                             checked_at = r.checked_at
when not matched then insert by name
