-- Every run, newest first, with its duration and outcome. status: running (or died if never finished:
-- abandoned), completed, staged (the warehouse was locked; its batches were loaded by a later run).
select run_id, flow, status, started_at, finished_at,
       round(epoch(finished_at - started_at), 1) as duration_s,
       feeds_total, feeds_ok, feeds_not_modified, feeds_failed, feeds_skipped,
       entries_seen, entries_new, pages_fetched, pages_failed,
       articles_new, fallbacks, duplicates_exact, duplicates_near, entity_mentions,
       batches_staged, message,
       (select count(*) from articles a where a.run_id = r.run_id) as articles_stored
from runs r
order by started_at desc
