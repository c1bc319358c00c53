-- Every dedup index row records the load that wrote it (`seq`, counted in dedup_index.seq, one more per
-- transaction that adds index rows). A lookup cache beside the warehouse file (flows/warehouse/keycache.py) holds the rows
-- up to some seq sorted by key for binary search; the lookup reads the rest from these tables with
-- `seq > $cached`, which zone maps prune to the row groups appended since (rows are appended in seq order).
-- Articles record the same number (`index_seq`), so the cache also answers the exact-text lookup.
-- Rows stored before this migration are seq 0.
alter table lsh_buckets add column seq bigint default 0;
alter table shingle_samples add column seq bigint default 0;
alter table dedup_index add column seq bigint default 0;
alter table articles add column index_seq bigint default 0;
