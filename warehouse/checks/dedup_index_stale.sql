-- Invariant: the stored dedup index was built with the current signature method and settings. Why: a lookup
-- signs new articles the current way and finds stored ones only through rows signed the same way; after a change
-- of [dedup] shingle_size, sample_mod, num_perm, bands, ... (or an upgrade that signs differently) near copies of
-- older articles are missed until `newsflow reprocess --step dedup` re-signs them. $dedup_method and
-- $dedup_params (canonical JSON) are the current ones, from flows/warehouse/candidates.py check_params.
select method, params, built_at, $dedup_method as current_method, $dedup_params as current_params
from dedup_index
where method <> $dedup_method
   or params is null
   or params::varchar <> $dedup_params
