-- Runs marked running, newest first, with their parameters (stage-only shard runs hold their shard's lock).
select run_id, flow, parameters
from runs
where status = 'running'
order by started_at desc
