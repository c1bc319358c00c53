-- The next load sequence number, taken by a transaction that adds dedup index rows (flows/warehouse/candidates.py).
-- Two writers of a lake that both take it conflict on this row, so one retries: numbers follow commit order.
update dedup_index set seq = coalesce(seq, 0) + 1
