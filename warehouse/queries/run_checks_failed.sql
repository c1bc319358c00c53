-- How many warehouse checks failed at the end of an ingest run (no row for `newsflow check` ids: nothing changes).
update runs
set checks_failed = $failed
where run_id = $run_id
