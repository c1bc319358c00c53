-- Texts of candidate originals, re-shingled by the loader for exact verification (flows/warehouse/candidates.py keeps
-- recent signatures by article and text hash).
select article_id, text_hash, text
from articles
where article_id in (select unnest($ids::bigint[]))
