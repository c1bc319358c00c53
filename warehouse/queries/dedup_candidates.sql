-- Stored articles worth verifying against each document of the batch:
-- the same normalised text, a shared LSH bucket, or enough shared sampled shingles for a containment match.
-- q_hashes(doc, text_hash), q_buckets(doc, key), q_samples(doc, hash, n_samples) are registered by
-- flows/candidates.py; a bucket key is the band folded into the bucket hash (candidates.bucket_keys).
-- Index rows up to load $cached_seq come from the lookup cache (flows/keycache.py) as q_cached_lsh(doc,
-- article_id) and q_cached_samples(doc, article_id, n); only the rows loaded since are read here, in the row
-- groups appended since (-1: no cache, every row).
-- The sample threshold mirrors flows.dedup.min_shared_samples.
with exact as (
    select q.doc, a.article_id
    from q_hashes q
    join articles a on a.text_hash = q.text_hash
),
lsh as (
    select q.doc, b.article_id
    from q_buckets q
    join lsh_buckets b on b.key = q.key
    where b.seq > $cached_seq
    union
    select doc, article_id from q_cached_lsh
),
shared as (
    select doc, article_id, sum(n) as n
    from (
        select q.doc, s.article_id, count(*) as n
        from q_samples q
        join shingle_samples s on s.hash = q.hash
        where s.seq > $cached_seq
        group by q.doc, s.article_id
        union all
        select doc, article_id, n from q_cached_samples
    )
    group by doc, article_id
),
sampled as (
    select sh.doc, sh.article_id
    from shared sh
    join (select distinct doc, n_samples as q_n from q_samples) q on q.doc = sh.doc
    join articles a on a.article_id = sh.article_id
    where sh.n >= greatest(1, floor(least(q.q_n, a.n_samples) * $containment_threshold * 0.5))
)
select doc, article_id from exact
union
select doc, article_id from lsh
union
select doc, article_id from sampled
