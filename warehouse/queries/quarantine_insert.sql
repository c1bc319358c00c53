-- A staged batch moved aside into the quarantine folder (flows/warehouse/store.py).
insert into staged_quarantine (batch_id, path, reason, quarantined_at, run_id)
values ($batch_id, $path, $reason, now(), $run_id)
