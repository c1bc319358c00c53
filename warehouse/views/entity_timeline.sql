-- Mentions of each entity per publication day (UTC) of the articles that mention it (seeds included).
with mentions as (
    select ae.entity_id, ae.mentions, ae.article_id,
           cast(coalesce(a.published_at, a.fetched_at, a.loaded_at) at time zone 'UTC' as date) as day
    from article_entities ae
    join articles a using (article_id)
),
final as (
    select e.entity_id, e.name, e.label, m.day,
           sum(m.mentions)::bigint as mentions,
           count(distinct m.article_id) as articles
    from mentions m
    join entities e using (entity_id)
    group by all
)
select * from final
order by name, label, day
