-- Invariant: every feed that was fetched (a feed_fetches row other than `skipped`) has a state row in feeds.
-- Why: the state (validators, failures in a row, backoff) is written with the fetch it describes; without it
-- the next run fetches unconditionally, never backs off and never alerts on that feed.
-- Scoped by $since (flows/warehouse/checks.py): fetches with load_seq > $since, those loaded since this check last
-- held (migration 0015; a full pass reads every row). The fetched feeds are grouped first (a hundred or so) and
-- only those without a state row are counted: an anti-join of every fetch row with `feeds` took 0.3-0.6 s of every
-- run at a year's 3.2M fetches, grouping them all 0.07-0.1 s (docs/checks.md).
with fetched as (
    select feed from feed_fetches where load_seq > $since and outcome <> 'skipped' group by feed
),
missing as (
    select feed from fetched where not exists (select 1 from feeds f where f.feed = fetched.feed)
)
select ff.feed, count(*) as fetches, max(ff.fetched_at) as last_fetched_at
from feed_fetches ff
where ff.load_seq > $since
  and ff.outcome <> 'skipped'
  and ff.feed in (select feed from missing)
group by ff.feed
order by ff.feed
