-- Today's stories (UTC): every story with an article (or copy) from today, most outlets first, with who covered it
-- first. Built from `stories` (flows/text/stories.py, docs/stories.md).
with today as (
    select *
    from stories
    where last_seen >= date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'
),
final as (
    select t.story_id, t.title, t.first_seen, t.last_seen, t.articles, t.originals, t.outlets, t.languages,
           t.top_entities, f.outlet as first_outlet
    from today t
    left join story_first_coverage f using (story_id)
)
select * from final
order by outlets desc, articles desc, last_seen desc, story_id
