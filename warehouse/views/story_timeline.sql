-- A story's timeline: its articles and copies in the order they appeared (time on the stories' clock, then URL),
-- each with its outlet, language, the score that placed it, and the hours since the story's first one.
with members as (
    select sa.story_id, sa.article_id, sa.published, sa.outlet, sa.language, sa.title, sa.url,
           sa.copy_of is not null as is_copy, sa.copy_of, sa.similarity
    from story_articles sa
),
final as (
    select m.*,
           row_number() over (partition by m.story_id order by m.published, m.url) as position,
           round(epoch(m.published - min(m.published) over (partition by m.story_id)) / 3600.0, 2)
               as hours_after_first
    from members m
)
select * from final
order by story_id, position
