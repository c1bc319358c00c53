-- Copies per original, shown with each search result (flows/warehouse/search_index.py).
select duplicate_of as article_id, count(*)::integer as copies
from duplicates
group by duplicate_of
