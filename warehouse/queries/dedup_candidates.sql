-- Stored articles worth verifying against each document of the batch:
-- the same normalised text, a shared LSH bucket, or enough shared sampled shingles for a containment match.
-- q_hashes(doc, text_hash), q_buckets(doc, key), q_samples(doc, hash, n_samples) are registered by
-- flows/candidates.py; a bucket key is the band folded into the bucket hash (candidates.bucket_keys).
-- The sample threshold mirrors flows.dedup.min_shared_samples.
with exact as (
    select q.doc, a.article_id
    from q_hashes q
    join articles a on a.text_hash = q.text_hash
),
lsh as (
    select distinct q.doc, b.article_id
    from q_buckets q
    join lsh_buckets b on b.key = q.key
),
shared as (
    select q.doc, s.article_id, count(*) as n, any_value(q.n_samples) as q_n
    from q_samples q
    join shingle_samples s on s.hash = q.hash
    group by q.doc, s.article_id
),
sampled as (
    select sh.doc, sh.article_id
    from shared sh
    join articles a on a.article_id = sh.article_id
    where sh.n >= greatest(1, floor(least(sh.q_n, a.n_samples) * $containment_threshold * 0.5))
)
select doc, article_id from exact
union
select doc, article_id from lsh
union
select doc, article_id from sampled
