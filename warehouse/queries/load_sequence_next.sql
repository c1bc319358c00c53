-- The next load sequence number (warehouse/migrations/0010), taken by a load transaction that writes articles,
-- duplicates or entity links (flows/warehouse/writer.py next_load_seq). Two writers of a lake that both take it
-- conflict on this row, so one retries: numbers follow commit order, and a pass that read N has seen every row <= N.
update load_sequence set seq = seq + 1
