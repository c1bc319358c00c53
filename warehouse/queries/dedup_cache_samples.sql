-- Sampled-shingle index rows written by the loads after $after up to $upto, for the lookup cache.
select hash as key, article_id
from shingle_samples
where seq > $after and seq <= $upto
