-- Feed tags, for `newsflow search --tag` (flows/warehouse/search_index.py).
select feed, coalesce(tags, []::varchar[]) as tags
from feeds
