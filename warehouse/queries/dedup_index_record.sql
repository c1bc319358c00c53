-- Record the method and settings that build the dedup index, unless a record is there already
-- (flows/candidates.py record_index clears it first after a full re-sign).
insert into dedup_index (method, params, built_at)
select $dedup_method, $dedup_params::json, now()
where not exists (select 1 from dedup_index)
