-- The load sequence number (0010) on feed fetches too, so the check `feeds_without_state` reads only the fetches
-- loaded since it last held instead of grouping every fetch row each run (88-106 ms at a year's 3.2M fetches
-- against 27-50 ms at 100k, docs/benchmarks.md). A load that writes feed fetches takes a number for them, a quiet
-- run's included. Rows stored before this migration are 0: only a full pass reads them.
alter table feed_fetches add column load_seq bigint default 0;
