-- Invariant: no URL is both a stored article and a recorded copy. Why: dedup gives each URL one verdict; a URL in
-- both tables is counted twice (articles per day, syndication) and means two loads disagreed.
-- Two halves, each joining the few rows loaded since with the other table, rather than one join filtered after.
-- Scoped by $since (flows/warehouse/checks.py): rows with load_seq > $since, those loaded since this check last
-- held; a full pass gives -1.
select a.url, a.article_id, d.duplicate_of, d.method
from articles a
join duplicates d on d.url = a.url
where a.load_seq > $since
union
select a.url, a.article_id, d.duplicate_of, d.method
from duplicates d
join articles a on a.url = d.url
where d.load_seq > $since
order by url
