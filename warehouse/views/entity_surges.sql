-- Each entity's mentions on a day against its trailing 7-day baseline: the average daily mentions over the
-- 7 days before (days without mentions count as 0). surge_ratio = (mentions + 1) / (baseline_7d + 1), so an
-- entity new this week with 5 mentions scores 6; filter on mentions too to skip one-off names.
with daily as (
    select entity_id, name, label, day, mentions, articles from entity_timeline
),
baseline as (
    select *,
           coalesce(sum(mentions) over (
               partition by entity_id order by day
               range between interval 7 days preceding and interval 1 day preceding
           ), 0) / 7.0 as baseline_7d
    from daily
),
final as (
    select entity_id, name, label, day, mentions, articles,
           round(baseline_7d, 3) as baseline_7d,
           round((mentions + 1) / (baseline_7d + 1), 3) as surge_ratio
    from baseline
)
select * from final
order by day desc, surge_ratio desc, mentions desc, name
