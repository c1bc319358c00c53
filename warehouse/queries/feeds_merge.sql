-- A run's feed states into `feeds` (flows/warehouse/writer.py). A run computes each state from the stored one it
-- read at its start, which is the published snapshot when the live file was held then (it may be hours old); so
-- a state never replaces one fetched later, and the counters it carries forward are taken from the stored row:
-- a failure fetched after the stored fetch is that row's failures + 1, whatever the run read. The same fetch
-- loaded again (a batch staged twice) changes nothing.
merge into feeds t
using (select * from q_rows) r
on t.feed = r.feed
when matched and r.last_fetch_at <= t.last_fetch_at then do nothing
when matched then update set
    url = r.url,
    configured_url = r.configured_url,
    tags = r.tags,
    title = coalesce(r.title, t.title),
    etag = r.etag,
    last_modified = r.last_modified,
    body_hash = coalesce(r.body_hash, t.body_hash),
    last_fetch_at = r.last_fetch_at,
    last_success_at = greatest(t.last_success_at, r.last_success_at),
    last_status = r.last_status,
    last_error = r.last_error,
    consecutive_failures = case when r.consecutive_failures = 0 then 0 else t.consecutive_failures + 1 end,
    next_fetch_at = r.next_fetch_at,
    disabled = r.disabled,
    disabled_reason = r.disabled_reason,
    updated_at = r.updated_at
when not matched then insert by name;
