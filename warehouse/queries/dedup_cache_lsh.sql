-- LSH index rows written by the loads after $after up to $upto, for the lookup cache (flows/warehouse/keycache.py).
select key, article_id
from lsh_buckets
where seq > $after and seq <= $upto
