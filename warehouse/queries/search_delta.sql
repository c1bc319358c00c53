-- What the search index must change (flows/warehouse/search_index.py), in one pass: the stored originals (a URL
-- recorded as a copy is never indexed twice) against the index's live articles (search_base_keys: article_id and
-- the first 16 characters of text_hash, registered by the caller). `stored`: an original the index lacks or holds
-- with another text (to index); otherwise a live article gone from the warehouse, recorded as a copy since, or
-- stored again with another text (to tombstone; its new text is in a `stored` row).
with originals as (
    select a.article_id, a.text_hash[:16] as hkey
    from articles a
    where not exists (select 1 from duplicates d where d.url = a.url)
)
select coalesce(o.article_id, b.article_id) as article_id, o.article_id is not null as stored
from originals o
full outer join search_base_keys b on b.article_id = o.article_id and b.hkey = o.hkey
where o.article_id is null or b.article_id is null
