-- Runs left 'running' by a process that died (the caller holds the run lock, so no other run is alive).
update runs
set status = 'abandoned',
    finished_at = coalesce(finished_at, now()),
    message = 'the process ended before the run finished; its staged batches are loaded by the next run'
where status = 'running' and run_id <> $run_id
