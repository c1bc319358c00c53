-- The articles the search index holds (flows/warehouse/search_index.py): stored originals (a URL recorded as a copy
-- is never indexed twice), for a delta segment only those the base segment lacks or holds with another text
-- (search_base_keys: the base's article_id and first 16 characters of text_hash, registered by the caller).
select a.article_id, a.url, a.title, a.feed, a.language,
       coalesce(a.published_at, a.fetched_at, a.loaded_at) as date,
       a.loaded_at, a.text_hash[:16] as hkey, a.text
from articles a
where not exists (select 1 from duplicates d where d.url = a.url)
  and not exists (select 1 from search_base_keys b where b.article_id = a.article_id and b.hkey = a.text_hash[:16])
