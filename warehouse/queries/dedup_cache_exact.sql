-- Text hashes of the articles loaded after $after up to $upto, for the lookup cache (flows/warehouse/keycache.py).
select text_hash as key, article_id
from articles
where index_seq > $after and index_seq <= $upto
