-- One row per feed: its state (ok, waiting, failing, backing_off, disabled), failures, backoff, validators and
-- the outcome of its latest attempt, so a disabled or backed-off feed stays visible.
with latest as (
    select feed, outcome, error, error_detail, http_status, fetched_at
    from feed_fetches
    qualify row_number() over (partition by feed order by fetched_at desc, fetch_id desc) = 1
),

recent as (
    select
        feed,
        count(*) as fetches_7d,
        count(*) filter (where outcome = 'failed') as failures_7d,
        count(*) filter (where outcome in ('not_modified', 'unchanged')) as unchanged_7d
    from feed_fetches
    where fetched_at >= now() - interval 7 day
    group by feed
),

final as (
    select
        f.feed,
        case
            when f.disabled then 'disabled'
            when f.consecutive_failures > 0 and f.next_fetch_at > now() then 'backing_off'
            when f.consecutive_failures > 0 then 'failing'
            when f.next_fetch_at > now() then 'waiting'
            else 'ok'
        end as state,
        f.consecutive_failures,
        f.last_success_at,
        f.last_fetch_at,
        f.last_status,
        f.last_error,
        f.next_fetch_at,
        f.disabled,
        f.disabled_reason,
        f.url,
        f.configured_url,
        f.url <> f.configured_url as moved,
        f.etag is not null or f.last_modified is not null as conditional_get,
        l.outcome as last_outcome,
        l.error as last_outcome_error,
        l.error_detail as last_outcome_detail,
        l.fetched_at as last_attempt_at,
        coalesce(r.fetches_7d, 0) as fetches_7d,
        coalesce(r.failures_7d, 0) as failures_7d,
        coalesce(r.unchanged_7d, 0) as unchanged_7d,
        f.title
    from feeds f
    left join latest l using (feed)
    left join recent r using (feed)
)

select * from final
order by state = 'ok', consecutive_failures desc, feed
