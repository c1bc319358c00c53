-- Text hashes of candidate originals: flows/warehouse/candidates.py reads the texts only of those it has not signed
-- yet. `$ids` is expanded into a list of parameters, an index scan however many candidates (see candidate_texts.sql).
select article_id, text_hash
from articles
where article_id in ($ids)
