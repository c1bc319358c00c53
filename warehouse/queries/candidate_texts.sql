-- Texts of candidate originals, re-shingled by the loader for exact verification (flows/warehouse/candidates.py keeps
-- recent signatures by article and text hash). `$ids` stands for a list of at most candidates.POINT_LOOKUP_IDS
-- parameters ($id_0, $id_1, ...), expanded by candidates.point_lookup: a list of constants is an index scan of the
-- primary key (EXPLAIN ANALYZE: `Type: Index Scan`) at any length up to DuckDB's index_scan_max_count (2048),
-- where `in (select unnest($list))` is one only below dynamic_or_filter_threshold (50 ids) and a full scan of
-- `articles` from there on (0.25 s -> 3.7 s at 1M articles, issue 23). tests/test_dedup.py checks that plan.
select article_id, text_hash, text
from articles
where article_id in ($ids)
