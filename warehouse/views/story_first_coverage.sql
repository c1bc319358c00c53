-- Who covered each story first: its earliest member (article or copy; ties by URL), and how long before the second
-- outlet the story reached.
with ranked as (
    select story_id, outlet, title, url, published,
           row_number() over (partition by story_id order by published, url) as position
    from story_articles
),
other_outlets as (
    select r.story_id, min(r.published) as second_outlet_at
    from ranked r
    join ranked f on f.story_id = r.story_id and f.position = 1
    where r.outlet is distinct from f.outlet
    group by r.story_id
),
final as (
    select f.story_id, f.outlet, f.title, f.url, f.published as first_seen, o.second_outlet_at,
           round(epoch(o.second_outlet_at - f.published) / 3600.0, 2) as hours_ahead
    from ranked f
    left join other_outlets o using (story_id)
    where f.position = 1
)
select * from final
order by first_seen desc, story_id
