-- Every feed's state, failures and latest outcome, failing feeds first: the feed_health view's figures, reading
-- only the last 7 days of feed_fetches (plus, for a feed not tried since, its fetches from its last attempt on)
-- rather than ranking every fetch ever recorded.
with week as (
    select feed, outcome, error, fetched_at, fetch_id
    from feed_fetches
    where fetched_at >= now() - interval 7 day
),
recent as (
    select feed,
           count(*) as fetches_7d,
           count(*) filter (where outcome = 'failed') as failures_7d
    from week
    group by feed
),
quiet as (  -- feeds with no fetch this week: their latest is at or after their last attempt
    select feed, coalesce(last_fetch_at, '-infinity'::timestamptz) as since
    from feeds
    where feed not in (select feed from recent)
),
older as (  -- the join's own bounds skip what precedes the quiet feeds' last attempts (and all, when none is)
    select x.feed, x.outcome, x.error, x.fetched_at, x.fetch_id
    from feed_fetches x
    join quiet q on q.feed = x.feed and x.fetched_at >= q.since
),
latest as (  -- each feed's newest fetch: an aggregate per feed rather than a window sorting the week's rows
    select feed, l.outcome, l.error, l.fetched_at
    from (select feed, arg_max({'outcome': outcome, 'error': error, 'fetched_at': fetched_at},
                               (fetched_at, fetch_id)) as l
          from (select * from week union all select * from older)
          group by feed)
),
final as (
    select f.feed,
           case
               when f.disabled then 'disabled'
               when f.consecutive_failures > 0 and f.next_fetch_at > now() then 'backing_off'
               when f.consecutive_failures > 0 then 'failing'
               when f.next_fetch_at > now() then 'waiting'
               else 'ok'
           end as state,
           f.consecutive_failures, f.last_success_at, l.fetched_at as last_attempt_at, l.outcome as last_outcome,
           coalesce(f.last_error, l.error) as error,
           coalesce(r.fetches_7d, 0) as fetches_7d, coalesce(r.failures_7d, 0) as failures_7d
    from feeds f
    left join latest l using (feed)
    left join recent r using (feed)
)
select * from final
order by state = 'ok', consecutive_failures desc, feed
