-- The last runs, newest first, with the warehouse checks recorded for each: how many ran and how many failed
-- (checks_failed is null and checks_run 0 when the run was not checked). Reads only the last $limit runs and their
-- check results (the run_history view counts every run's articles).
with recent as (
    select * from runs order by started_at desc limit $limit
),
checked as (
    select c.run_id, count(*) as checks_run
    from check_results c
    where c.checked_at >= (select min(started_at) from recent) and c.run_id in (select run_id from recent)
    group by all
)
select r.run_id, r.flow, r.status, r.started_at, round(epoch(r.finished_at - r.started_at), 1) as duration_s,
       r.feeds_ok, r.feeds_failed, r.articles_new, r.duplicates_exact + r.duplicates_near as duplicates, r.message,
       r.checks_failed, coalesce(k.checks_run, 0) as checks_run
from recent r
left join checked k using (run_id)
order by r.started_at desc
