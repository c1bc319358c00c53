-- Articles stored per feed and day over the $days days that end on the latest day with an article, so an old
-- or paused warehouse still shows its last month rather than an empty one. From daily_feed_articles (kept by
-- each load, migration 0011), the articles_per_feed view's figures without scanning every article.
-- A day later than tomorrow (UTC) is a date no article can have had when stored (flows/run/documents.py
-- `plausible_date`; rows stored before it may): it neither ends the window nor shows in it.
with bounds as (
    select max(day) as last_day
    from daily_feed_articles
    where articles > 0 and day <= (now() at time zone 'UTC')::date + 1
)
select p.feed, p.day, p.articles
from daily_feed_articles p, bounds b
where p.articles > 0 and p.day > b.last_day - cast($days as integer) and p.day <= b.last_day
order by p.day, p.feed
