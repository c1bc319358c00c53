-- The most syndicated stories: the stored original, how many copies were found and which outlets carried them.
select title, url, is_seed, original_feed, copies, n_outlets, outlets, first_seen_at
from syndication
limit $limit
