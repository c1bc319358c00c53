-- The report's headline figures: stored articles (seeds apart), feeds, entities, copies, runs, and the span of
-- publication days. Every count is over the whole warehouse.
select (select count(*) from articles where not is_seed) as articles,
       (select count(*) from articles where is_seed) as seeds,
       (select count(*) from feeds) as feeds,
       (select count(*) from entities) as entities,
       (select count(*) from duplicates) as duplicates,
       (select count(*) from runs) as runs,
       (select min(day) from articles_per_feed) as first_day,
       (select max(day) from articles_per_feed) as last_day
