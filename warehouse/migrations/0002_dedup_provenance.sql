-- Provenance of the 'new' dedup verdict: how many stored or same-batch articles were verified against the
-- article, and the closest of them with its scores (all below the thresholds, or it would be a duplicate).
-- Duplicates keep their verdict in `duplicates` (duplicate_of, method, criterion, similarity).
alter table articles add column dedup_candidates integer;
alter table articles add column dedup_nearest bigint;
alter table articles add column dedup_nearest_jaccard double;
alter table articles add column dedup_nearest_containment double;
