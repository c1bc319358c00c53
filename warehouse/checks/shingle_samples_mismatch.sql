-- Invariant: every article has exactly n_samples rows in shingle_samples (its sampled shingles; 0 for a text too
-- short to have any). Why: containment lookups read that index, so an article missing from it is never matched
-- as the original of a later copy, and the copy is stored as new.
with indexed as (
    select article_id, count(*) as n
    from shingle_samples
    group by article_id
)
select a.article_id, a.url, a.n_samples, coalesce(i.n, 0) as indexed
from articles a
left join indexed i on i.article_id = a.article_id
where a.n_samples <> coalesce(i.n, 0)
order by a.article_id
