-- Staged batches the loader moved into the quarantine folder, newest first, for `newsflow status`.
select batch_id, quarantined_at, run_id[:8] as run, reason, path
from staged_quarantine
order by quarantined_at desc
limit 20
