-- Invariant: every duplicates.duplicate_of points at a stored article (or seed). Why: a copy whose original is
-- gone cannot be traced (syndication, provenance) and its text was never stored, so the story is lost.
-- Scoped by $since (flows/warehouse/checks.py): rows with load_seq > $since, those loaded since this check last
-- held; a full pass gives -1.
select d.url, d.duplicate_of, d.method, d.run_id
from duplicates d
where d.load_seq > $since
  and not exists (select 1 from articles a where a.article_id = d.duplicate_of)
order by d.url
