-- Stored articles worth verifying against each document of the batch:
-- the same normalised text, a shared LSH bucket, or enough shared sampled shingles for a containment match.
-- q_hashes(doc, text_hash), q_buckets(doc, key), q_samples(doc, hash, n_samples) are registered by
-- flows/warehouse/candidates.py; a bucket key is the band folded into the bucket hash (candidates.bucket_keys).
-- What was loaded up to load $cached_seq the lookup cache (flows/warehouse/keycache.py) has answered already, as
-- q_cached(doc, article_id); only what was loaded since is read here, in the row groups appended since
-- (-1: no cache, every row).
-- The sample threshold mirrors flows.text.dedup.min_shared_samples ($sample_share is dedup.sample_share); an article's number of samples is its number of
-- rows in shingle_samples (the shingle_samples_mismatch check holds it), all written by the same load.
with exact as (
    select q.doc, a.article_id
    from q_hashes q
    join articles a on a.text_hash = q.text_hash
    where a.index_seq > $cached_seq
),
lsh as (
    select q.doc, b.article_id
    from q_buckets q
    join lsh_buckets b on b.key = q.key
    where b.seq > $cached_seq
),
shared as (
    select q.doc, s.article_id, count(*) as n
    from q_samples q
    join shingle_samples s on s.hash = q.hash
    where s.seq > $cached_seq
    group by q.doc, s.article_id
),
sizes as (
    select article_id, count(*) as n
    from shingle_samples
    where seq > $cached_seq and article_id in (select article_id from shared)
    group by article_id
),
sampled as (
    select sh.doc, sh.article_id
    from shared sh
    join sizes z on z.article_id = sh.article_id
    join (select distinct doc, n_samples as q_n from q_samples) q on q.doc = sh.doc
    where sh.n >= greatest(1, floor(least(q.q_n, z.n) * $sample_share))
)
select doc, article_id from exact
union
select doc, article_id from lsh
union
select doc, article_id from sampled
union
select doc, article_id from q_cached
