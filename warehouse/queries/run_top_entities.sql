-- The entities most mentioned in the articles a run stored. The run's articles are found among those loaded since
-- it started (zone maps skip older row groups: loads append in time order); their links from the smallest load
-- number among them on (a link never carries a smaller one than its article), so older links are skipped too.
with run_articles as (
    select a.article_id, a.load_seq
    from articles a
    where a.run_id = $run_id
      and a.loaded_at >= coalesce((select started_at from runs where run_id = $run_id), '-infinity'::timestamptz)
),
links as (
    select ae.entity_id, sum(ae.mentions) as mentions, count(*) as articles
    from article_entities ae
    where ae.article_id in (select article_id from run_articles)
      -- A run that stored nothing: the largest bigint, not NULL (zone maps prune on a value, never on NULL).
      and ae.load_seq >= (select coalesce(min(load_seq), 9223372036854775807) from run_articles)
    group by ae.entity_id
)
select e.name, e.label, l.mentions, l.articles
from links l
join entities e using (entity_id)
order by l.mentions desc, e.name
limit $limit
