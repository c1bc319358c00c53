-- Stored articles per publication day (UTC), and copies (recorded as duplicates) published that day.
-- Articles without a publication date count on the day they were fetched (or loaded, for seeds).
with stored as (
    select cast(coalesce(published_at, fetched_at, loaded_at) at time zone 'UTC' as date) as day,
           is_seed, body_source, feed
    from articles
),
copies as (
    select cast(coalesce(e.published_at, d.seen_at) at time zone 'UTC' as date) as day, count(*) as duplicates
    from duplicates d
    left join entries e on e.feed = d.feed and e.guid = d.entry_guid
    group by all
),
per_day as (
    select day,
           count(*) filter (where not is_seed) as articles,
           count(*) filter (where is_seed) as seeds,
           count(*) filter (where body_source = 'feed_summary') as fallbacks,
           count(distinct feed) as feeds
    from stored
    group by day
),
final as (
    select coalesce(p.day, c.day) as day,
           coalesce(p.articles, 0) as articles,
           coalesce(p.seeds, 0) as seeds,
           coalesce(p.fallbacks, 0) as fallbacks,
           coalesce(p.feeds, 0) as feeds,
           coalesce(c.duplicates, 0) as duplicates_seen
    from per_day p
    full join copies c using (day)
)
select * from final
order by day
