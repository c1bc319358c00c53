-- Record the method and settings that build the dedup index, unless a record is there already
-- (flows/warehouse/candidates.py record_index clears it first after a full re-sign, keeping its load sequence number).
insert into dedup_index (method, params, built_at, seq)
select $dedup_method, $dedup_params::json, now(), $seq
where not exists (select 1 from dedup_index)
