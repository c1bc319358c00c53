-- Invariant: no URL is both a stored article and a recorded copy. Why: dedup gives each URL one verdict; a URL in
-- both tables is counted twice (articles per day, syndication) and means two loads disagreed.
-- Two halves, each joining the few rows loaded since with the other table, rather than one join filtered after.
-- Scoped by $since (flows/warehouse/checks.py): rows with load_seq > $since, those loaded since this check last
-- held, up to $until (the counter read before the pass); a full pass gives -1. The new rows come from a join with
-- the range of new load numbers, so the planner sizes them by it and hashes them, not every stored copy (as
-- orphan_article_entities, docs/checks.md).
with new_articles as (
    select a.url, a.article_id
    from range($since + 1, $until + 1) s(seq)
    join articles a on a.load_seq = s.seq
    where a.load_seq > $since
),
new_duplicates as (
    select d.url, d.duplicate_of, d.method
    from range($since + 1, $until + 1) s(seq)
    join duplicates d on d.load_seq = s.seq
    where d.load_seq > $since
)
select a.url, a.article_id, d.duplicate_of, d.method
from new_articles a
join duplicates d on d.url = a.url
union
select a.url, a.article_id, d.duplicate_of, d.method
from new_duplicates d
join articles a on a.url = d.url
order by url
