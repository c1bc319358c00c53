-- The record of the stored dedup index and its last load sequence number (flows/warehouse/keycache.py).
select method, coalesce(params::varchar, ''), built_at::varchar, coalesce(seq, 0)
from dedup_index
order by built_at desc
limit 1
