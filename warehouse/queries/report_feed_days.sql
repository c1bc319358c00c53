-- Articles stored per feed and day over the $days days that end on the latest day with an article, so an old
-- or paused warehouse still shows its last month rather than an empty one. From daily_feed_articles (kept by
-- each load, migration 0011), the articles_per_feed view's figures without scanning every article.
with bounds as (
    select max(day) as last_day from daily_feed_articles where articles > 0
)
select p.feed, p.day, p.articles
from daily_feed_articles p, bounds b
where p.articles > 0 and p.day > b.last_day - cast($days as integer)
order by p.day, p.feed
