-- For each stored original (an article or a seed) that copies were found of: which outlets (feeds) carried a
-- copy, how many copies, and when copies were first and last seen. Built from `duplicates`.
with copies as (
    select duplicate_of as article_id, url, feed, method, seen_at
    from duplicates
),
final as (
    select a.article_id, a.url, a.title, a.is_seed, a.seed_file,
           a.feed as original_feed, a.published_at as original_published_at,
           count(*) as copies,
           count(*) filter (where c.method = 'exact') as exact_copies,
           count(*) filter (where c.method = 'near') as near_copies,
           list_sort(list_distinct(list(c.feed))) as outlets,
           count(distinct c.feed) as n_outlets,
           min(c.seen_at) as first_seen_at,
           max(c.seen_at) as last_seen_at
    from copies c
    join articles a using (article_id)
    group by all
)
select * from final
order by copies desc, first_seen_at
