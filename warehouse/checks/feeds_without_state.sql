-- Invariant: every feed that was fetched (a feed_fetches row other than `skipped`) has a state row in feeds.
-- Why: the state (validators, failures in a row, backoff) is written with the fetch it describes; without it
-- the next run fetches unconditionally, never backs off and never alerts on that feed.
select ff.feed, count(*) as fetches, max(ff.fetched_at) as last_fetched_at
from feed_fetches ff
where ff.outcome <> 'skipped'
  and not exists (select 1 from feeds f where f.feed = ff.feed)
group by ff.feed
order by ff.feed
