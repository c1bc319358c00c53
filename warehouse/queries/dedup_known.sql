-- Which of the batch's URLs the warehouse already holds, as an article or as a recorded duplicate.
-- q_docs(doc, url, is_seed, seed_file_hash) is the batch, registered by the loader.
select q.doc, a.article_id, a.is_seed, a.seed_file_hash = q.seed_file_hash as same_seed, 'article' as kind
from q_docs q
join articles a on a.url = q.url
union all
select q.doc, d.duplicate_of, false, false, 'duplicate'
from q_docs q
join duplicates d on d.url = q.url
