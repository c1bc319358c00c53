-- The originals a refresh indexes (flows/warehouse/search_index.py): those search_delta.sql found new or changed
-- (search_new_ids, registered by the caller), as a segment holds them.
select a.article_id, a.url, a.title, a.feed, a.language,
       coalesce(a.published_at, a.fetched_at, a.loaded_at) as date,
       a.loaded_at, a.text_hash[:16] as hkey, a.text
from articles a
where a.article_id in (select article_id from search_new_ids)
