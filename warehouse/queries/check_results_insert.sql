-- The warehouse checks' outcomes (flows/warehouse/checks.py), $rows a list of one struct per check: one statement for all
-- of them (a statement per check was 25 ms of a 0.6 s quiet run). A check re-run under the same run id replaces
-- its row. A merge on the key rather than `insert or replace`, so that it also holds on a DuckLake (no key
-- constraints). scope, since_seq, until_seq: what the check read (full, or the rows loaded in that range).
merge into check_results t
using (
    select r.run_id::varchar as run_id, r.check_name::varchar as check_name,
           r.offending_rows::bigint as offending_rows, r.sample::json as sample,
           r.duration_ms::double as duration_ms, r.checked_at::timestamptz as checked_at,
           r.scope::varchar as scope, r.since_seq::bigint as since_seq, r.until_seq::bigint as until_seq
    from (select unnest($rows) as r)
) r
on t.run_id = r.run_id and t.check_name = r.check_name
when matched then update set offending_rows = r.offending_rows, sample = r.sample, duration_ms = r.duration_ms,
                             checked_at = r.checked_at, scope = r.scope, since_seq = r.since_seq,
                             until_seq = r.until_seq
when not matched then insert by name
