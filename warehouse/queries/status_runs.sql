-- The last runs, newest first, for `newsflow status` (checks_failed: warehouse checks failing at its end). A run
-- still `running` whose process is gone (`dead_runs`, registered by flows/ops/status.py from the run locks) is
-- shown as such; the next load or ingest marks it `abandoned`.
select run_id[:8] as run, flow, started_at,
       case when status = 'running' and run_id in (select run_id from dead_runs) then 'dead (process gone)'
            else status end as status,
       feeds_ok, feeds_failed, articles_new,
       duplicates_exact + duplicates_near as duplicates, entity_mentions, checks_failed, message
from runs
order by started_at desc
limit 10
