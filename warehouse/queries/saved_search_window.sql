-- The articles whose saved-search matches `newsflow status` and the report show (flows/warehouse/savedmatches.py):
-- stored originals (the search index holds no copies) loaded since $since, or by the last run that loaded any.
with last_run as (
    select run_id from articles order by loaded_at desc, article_id limit 1
)
select a.article_id,
       a.loaded_at >= $since as in_window,
       a.run_id in (select run_id from last_run) as in_last_run,
       a.run_id
from articles a
where (a.loaded_at >= $since or a.run_id in (select run_id from last_run))
  and not exists (select 1 from duplicates d where d.url = a.url)
