-- An article found to be a copy of an earlier one: record it in `duplicates` (as the loader would have).
-- q_demoted(article_id, duplicate_of, method, criterion, similarity, jaccard, containment) is registered by the caller.
-- A URL already recorded keeps its row (`not exists` rather than `insert or ignore`: a DuckLake has no keys).
-- Written outside a load: `load_seq` stays 0, so only a full check pass reads the row (docs/checks.md).
insert into duplicates (url, feed, entry_guid, title, duplicate_of, method, criterion, similarity, jaccard,
                        containment, text_hash, seen_at, run_id)
select a.url, a.feed, a.entry_guid, a.title, q.duplicate_of, q.method, q.criterion, q.similarity, q.jaccard,
       q.containment, a.text_hash, now(), $run_id
from q_demoted q
join articles a using (article_id)
where not exists (select 1 from duplicates d where d.url = a.url)
