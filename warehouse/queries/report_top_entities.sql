-- The most mentioned entities across stored articles.
select name, label, mentions, articles
from entity_mentions_top
limit $limit
