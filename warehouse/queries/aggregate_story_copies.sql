-- The story_copies figures of the copies in agg_copies (a temp view set by flows/warehouse/aggregates.py): per
-- stored original, how many copies and when they were first and last seen.
select duplicate_of as article_id, count(*) as copies, count(*) filter (where method = 'exact') as exact_copies,
       count(*) filter (where method = 'near') as near_copies, min(seen_at) as first_seen_at,
       max(seen_at) as last_seen_at
from agg_copies
group by all
