-- Texts of candidate originals, re-shingled by the loader for exact verification.
select article_id, text
from articles
where article_id in (select unnest($ids::bigint[]))
