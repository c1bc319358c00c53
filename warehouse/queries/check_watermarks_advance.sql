-- Move the watermark of each scoped check that held in this pass ($rows: check_name, seq, run_id, checked_at) to the
-- load sequence number read before the pass. Never backwards (a full pass that started before an incremental one
-- committed keeps the later mark). A merge on the name rather than a key, so it also holds on a DuckLake.
merge into check_watermarks t
using (
    select r.check_name::varchar as check_name, r.seq::bigint as seq, r.run_id::varchar as run_id,
           r.checked_at::timestamptz as checked_at
    from (select unnest($rows) as r)
) r
on t.check_name = r.check_name
when matched and r.seq > t.seq then update set seq = r.seq, run_id = r.run_id, checked_at = r.checked_at
when not matched then insert by name
