-- Invariant: no URL is both a stored article and a recorded copy. Why: dedup gives each URL one verdict; a URL in
-- both tables is counted twice (articles per day, syndication) and means two loads disagreed.
select a.url, a.article_id, d.duplicate_of, d.method
from articles a
join duplicates d on d.url = a.url
order by a.url
