-- The dedup index gets one integer key per LSH bucket: band and bucket hash folded into one BIGINT (the band in
-- the low 9 bits, as flows/warehouse/candidates.py bucket_keys does; num_perm <= 512 bounds the band), so the lookup is a
-- single-column join. shingle_samples keeps its layout: its hash is already one integer key.
-- Not rewritten ordered by key: on DuckDB 2.0.1 that made the lookup no faster (docs/benchmarks.md).
create table lsh_keys (
    key           bigint not null,
    article_id    bigint not null
);
insert into lsh_keys
select (bucket & ~511::bigint) | band::bigint, article_id
from lsh_buckets;
drop table lsh_buckets;
alter table lsh_keys rename to lsh_buckets;

-- Which signature method and settings built the stored index (one row). Written by the first load into an empty
-- index and by `newsflow reprocess --step dedup` when it has re-signed every article; the dedup_index_stale check
-- compares it with the current settings. An index built before it was recorded says 'unrecorded' (no params),
-- so the check asks for a re-sign instead of trusting it.
create table dedup_index (
    method        varchar not null,
    params        json,
    built_at      timestamptz not null
);
insert into dedup_index
select 'unrecorded', null, now()
where exists (select 1 from articles);
