-- Per feed and publication day (UTC): articles stored (first surfaced by that feed) and copies it carried.
with stored as (
    select feed,
           cast(coalesce(published_at, fetched_at) at time zone 'UTC' as date) as day,
           count(*) as articles,
           count(*) filter (where body_source = 'feed_summary') as fallbacks
    from articles
    where not is_seed
    group by all
),
copies as (
    select d.feed, cast(coalesce(e.published_at, d.seen_at) at time zone 'UTC' as date) as day,
           count(*) as duplicates
    from duplicates d
    left join entries e on e.feed = d.feed and e.guid = d.entry_guid
    where d.feed is not null
    group by all
),
final as (
    select coalesce(s.feed, c.feed) as feed,
           coalesce(s.day, c.day) as day,
           coalesce(s.articles, 0) as articles,
           coalesce(s.fallbacks, 0) as fallbacks,
           coalesce(c.duplicates, 0) as duplicates
    from stored s
    full join copies c on c.feed = s.feed and c.day = s.day
)
select * from final
order by feed, day
