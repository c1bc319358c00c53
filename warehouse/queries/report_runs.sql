-- The last runs, newest first, with the warehouse checks recorded for each: how many ran and how many failed
-- (checks_failed is null and checks_run 0 when the run was not checked).
select h.run_id, h.flow, h.status, h.started_at, h.duration_s, h.feeds_ok, h.feeds_failed, h.articles_new,
       h.duplicates_exact + h.duplicates_near as duplicates, h.message, r.checks_failed,
       (select count(*) from check_results c where c.run_id = h.run_id) as checks_run
from run_history h
join runs r using (run_id)
order by h.started_at desc
limit $limit
