-- Each article loaded after $after up to $upto and its number of sampled shingles (in the `article_id` column the
-- cache reads values from), for the containment threshold of cached candidates (flows/warehouse/keycache.py).
select article_id as key, n_samples as article_id
from articles
where index_seq > $after and index_seq <= $upto
