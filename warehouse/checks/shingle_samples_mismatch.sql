-- Invariant: every article has exactly n_samples rows in shingle_samples (its sampled shingles; 0 for a text too
-- short to have any). Why: containment lookups read that index, so an article missing from it is never matched
-- as the original of a later copy, and the copy is stored as new.
-- Scoped by $since (flows/warehouse/checks.py): rows with load_seq > $since, those loaded since this check last
-- held; a full pass gives -1. An article's samples are written by its load with seq = its index_seq (a re-sign
-- by `newsflow reprocess` writes a later one), so `s.seq >= min(index_seq)` lets zone maps skip the index rows of
-- older loads: at 100k articles an incremental pass read 4,096 of 5.6M rows (docs/checks.md).
with new as (
    select article_id, url, n_samples, index_seq
    from articles
    where load_seq > $since
),
indexed as (
    select s.article_id, count(*) as n
    from shingle_samples s
    -- With nothing new the bound is the largest bigint, not NULL: zone maps prune on a value, never on NULL
    -- (a NULL bound read all 48M index rows of a year, 0.77 s of every quiet run).
    where s.seq >= (select coalesce(min(index_seq), 9223372036854775807) from new)
      and s.article_id in (select article_id from new)
    group by s.article_id
)
select n.article_id, n.url, n.n_samples, coalesce(i.n, 0) as indexed
from new n
left join indexed i on i.article_id = n.article_id
where n.n_samples <> coalesce(i.n, 0)
order by n.article_id
