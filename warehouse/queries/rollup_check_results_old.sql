-- check_results rows to roll up: checked before $cutoff, except each check's latest outcome (`newsflow status`).
with keep as (
    select run_id, check_name from check_results
    qualify row_number() over (partition by check_name order by checked_at desc, run_id) = 1
)
select c.*
from check_results c
anti join keep k using (run_id, check_name)
where c.checked_at < $cutoff
