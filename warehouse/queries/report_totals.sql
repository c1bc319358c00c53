-- The report's headline figures: stored articles (seeds apart), feeds, entities, copies and runs, over the whole
-- warehouse. Tables only, so it answers on a warehouse whose views are from another version.
select (select count(*) from articles where not is_seed) as articles,
       (select count(*) from articles where is_seed) as seeds,
       (select count(*) from feeds) as feeds,
       (select count(*) from entities) as entities,
       (select count(*) from duplicates) as duplicates,
       (select count(*) from runs) as runs
