-- New shingle and sample counts after re-signing with the current dedup settings.
update articles a
set n_shingles = q.n_shingles, n_samples = q.n_samples
from q_sizes q
where a.article_id = q.article_id
