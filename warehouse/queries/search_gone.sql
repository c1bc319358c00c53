-- Articles of the search index's base segment a reader must no longer show (flows/warehouse/search_index.py): gone
-- from the warehouse, recorded as a copy since, or stored again with another text (the delta holds the new text).
select b.article_id
from search_base_keys b
where not exists (select 1 from articles a
                  where a.article_id = b.article_id and a.text_hash[:16] = b.hkey
                    and not exists (select 1 from duplicates d where d.url = a.url))
