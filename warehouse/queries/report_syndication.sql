-- The most syndicated stories: the stored original, how many copies were found and which outlets carried them.
-- The top stories come from story_copies (one row per original, kept by each load, migration 0011); only their
-- copies are read from `duplicates`, for the outlets.
-- Only the best $ranked rows of story_copies are checked against `articles` (the original must still be stored):
-- checking every row probed all the articles' ids (15-40 ms of the report page at a year). The caller
-- (flows/warehouse/reportpage.py) asks again with $ranked NULL, every row, when fewer than $limit came back.
with ranked as (
    select s.article_id, s.copies, s.first_seen_at
    from story_copies s
    order by s.copies desc, s.first_seen_at, s.article_id
    limit $ranked
),
top as (
    select r.*
    from ranked r
    where r.article_id in (select article_id from articles)
    order by r.copies desc, r.first_seen_at, r.article_id
    limit $limit
),
outlets as (
    select d.duplicate_of as article_id, list_sort(list_distinct(list(d.feed))) as outlets,
           count(distinct d.feed) as n_outlets
    from duplicates d
    where d.duplicate_of in (select article_id from top)
    group by all
)
select a.title, a.url, a.is_seed, a.feed as original_feed, t.copies, o.n_outlets, o.outlets, t.first_seen_at
from top t
join articles a using (article_id)
join outlets o using (article_id)
order by t.copies desc, t.first_seen_at, t.article_id
