-- The newest run marked running: the live one when another process holds the run lock (`newsflow check`).
select run_id, flow, started_at
from runs
where status = 'running'
order by started_at desc
limit 1
