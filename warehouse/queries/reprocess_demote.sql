-- An article found to be a copy of an earlier one: record it in `duplicates` (as the loader would have).
-- q_demoted(article_id, duplicate_of, method, criterion, similarity, jaccard, containment) is registered by the caller.
-- A URL already recorded keeps its row (`not exists` rather than `insert or ignore`: a DuckLake has no keys).
-- $load_seq: a number taken in this transaction, as a load's rows have, so the next incremental check reads the row.
insert into duplicates (url, feed, entry_guid, title, duplicate_of, method, criterion, similarity, jaccard,
                        containment, text_hash, seen_at, run_id, load_seq)
select a.url, a.feed, a.entry_guid, a.title, q.duplicate_of, q.method, q.criterion, q.similarity, q.jaccard,
       q.containment, a.text_hash, now(), $run_id, $load_seq
from q_demoted q
join articles a using (article_id)
where not exists (select 1 from duplicates d where d.url = a.url)
