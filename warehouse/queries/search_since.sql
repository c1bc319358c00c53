-- What loads wrote after the search index's mark (flows/warehouse/search_index.py): each article they stored
-- (`original`: not also recorded as a copy), and each stored article a load recorded as a copy since (to drop
-- from the index). load_seq grows with every load, so DuckDB's zone maps read only the newest row groups.
select a.article_id, a.text_hash[:16] as hkey, 'article' as kind,
       not exists (select 1 from duplicates d where d.url = a.url) as original
from articles a
where a.load_seq > $since
union all
select a.article_id, a.text_hash[:16] as hkey, 'copy' as kind, false as original
from duplicates d
join articles a on a.url = d.url
where d.load_seq > $since
