-- Invariant: no run is left `running` when its process is gone. Why: a dead run's row says nothing about what
-- it stored; the next ingest marks it `abandoned` (and refetches its feeds without validators), so one that
-- stays `running` means that never happened. $alive_runs are the runs known to be alive (the ingest running the
-- checks); runs started at or after $started_before may be alive too (they began after the run lock was tested).
select run_id, flow, started_at, parameters
from runs
where status = 'running'
  and not list_contains($alive_runs, run_id)
  and started_at < $started_before
order by started_at
