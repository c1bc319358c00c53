-- runs rows to roll up: started before $cutoff and finished (never a `running` one: the checks and the next run
-- judge those), except the runs the feed_fetches and check_results rows still kept belong to.
select r.*
from runs r
where r.started_at < $cutoff
  and r.status <> 'running'
  and r.run_id not in (select run_id from feed_fetches)
  and r.run_id not in (select run_id from check_results)
