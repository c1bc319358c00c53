-- The load sequence number up to which each scoped warehouse check last held (flows/warehouse/checks.py).
select check_name, max(seq) as seq
from check_watermarks
group by check_name
