-- Invariant: no staged batch has waited on disk for more than a day. Why: a batch is staged when the warehouse
-- is locked and the next run loads it; one still there a day later means loads keep failing (a session holding
-- the file open, a batch the loader refuses) and its articles are missing from every query.
-- `staged_batches` (batch_id, run_id, staged_at) is the staging folder, registered by flows/warehouse/checks.py.
select batch_id, run_id, staged_at
from staged_batches
where staged_at < now() - interval 1 day
order by batch_id
