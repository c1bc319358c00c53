-- The latest outcome of each warehouse check (the last ingest or `newsflow check` that ran it), failing first,
-- for `newsflow status`.
select check_name, offending_rows, checked_at, run_id, sample
from check_results
qualify row_number() over (partition by check_name order by checked_at desc, run_id) = 1
order by offending_rows = 0, check_name
