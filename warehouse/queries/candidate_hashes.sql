-- Text hashes of candidate originals: flows/warehouse/candidates.py reads the texts only of those it has not signed yet.
select article_id, text_hash
from articles
where article_id in (select unnest($ids::bigint[]))
