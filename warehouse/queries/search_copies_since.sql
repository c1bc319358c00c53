-- Copies per original recorded by loads after the search index's mark (flows/warehouse/search_index.py), added to
-- the counts the index holds.
select duplicate_of as article_id, count(*)::integer as copies
from duplicates
where load_seq > $since
group by duplicate_of
