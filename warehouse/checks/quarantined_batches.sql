-- Invariant: no staged batch waits in quarantine. Why: a batch the loader could not read (a truncated or empty
-- Parquet file, a schema version from a newer newsflow) is moved to <staging_dir>/quarantine/ so the others load;
-- its articles and feed states are missing from every query until someone repairs, re-stages or deletes it
-- (docs/operations.md). `quarantined_batches` (folder, path) is that folder, registered by flows/warehouse/checks.py;
-- the reason comes from the row the loader wrote in `staged_quarantine` when it moved the batch.
with recorded as (
    select path, reason, quarantined_at, run_id
    from staged_quarantine
    qualify row_number() over (partition by path order by quarantined_at desc) = 1
)
select q.folder as batch_id, coalesce(r.reason, 'no staged_quarantine row (moved by hand?)') as reason,
       r.quarantined_at, r.run_id
from quarantined_batches q
left join recorded r on r.path = q.path
order by q.folder
