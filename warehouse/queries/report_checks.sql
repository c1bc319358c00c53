-- The warehouse checks that failed in the last $limit runs, newest run first, with a sample of offending rows.
-- Only check results recorded since the oldest of those runs started are read.
with recent as (
    select run_id, started_at from runs order by started_at desc limit $limit
)
select c.run_id, c.check_name, c.offending_rows, c.sample, c.checked_at
from check_results c
join recent r using (run_id)
where c.offending_rows > 0 and c.checked_at >= (select min(started_at) from recent)
order by r.started_at desc, c.check_name
