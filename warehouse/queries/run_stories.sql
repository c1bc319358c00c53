-- The stories a run added articles or copies to (the run's artifact): new ones (every member from this run) and
-- growing ones, most outlets first. Members are placed in time order: those placed since the run started are
-- found by zone maps on placed_at, not by a scan of every member's run id.
with placed as (
    select story_id, count(*) as added
    from story_articles
    where run_id = $run_id
      and placed_at >= coalesce((select started_at from runs where run_id = $run_id), '-infinity'::timestamptz)
    group by story_id
)
select s.story_id, s.title, s.articles, s.outlets, p.added, s.articles = p.added as is_new, s.languages
from placed p
join stories s using (story_id)
order by s.outlets desc, s.articles desc, s.story_id
limit $limit
