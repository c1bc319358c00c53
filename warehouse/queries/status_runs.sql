-- The last runs, newest first, for `newsflow status` (checks_failed: warehouse checks failing at its end).
select run_id[:8] as run, flow, started_at, status, feeds_ok, feeds_failed, articles_new,
       duplicates_exact + duplicates_near as duplicates, entity_mentions, checks_failed, message
from runs
order by started_at desc
limit 10
