-- Articles stored per feed and day over the $days days that end on the latest day with an article, so an old
-- or paused warehouse still shows its last month rather than an empty one.
with bounds as (
    select max(day) as last_day from articles_per_feed where articles > 0
)
select p.feed, p.day, p.articles
from articles_per_feed p, bounds b
where p.articles > 0 and p.day > b.last_day - cast($days as integer)
order by p.day, p.feed
