-- The stories a run added articles or copies to (the run's artifact): new ones (every member from this run) and
-- growing ones, most outlets first.
with placed as (
    select story_id, count(*) as added
    from story_articles
    where run_id = $run_id
    group by story_id
)
select s.story_id, s.title, s.articles, s.outlets, p.added, s.articles = p.added as is_new, s.languages
from placed p
join stories s using (story_id)
order by s.outlets desc, s.articles desc, s.story_id
limit $limit
