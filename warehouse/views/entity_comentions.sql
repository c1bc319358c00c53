-- Pairs of entities mentioned in the same stored article (each pair once, entity_a's name sorts first):
-- how many articles, and the first and last publication day (UTC) they appeared together.
with tagged as (
    select ae.article_id, e.entity_id, e.name, e.label,
           cast(coalesce(a.published_at, a.fetched_at, a.loaded_at) at time zone 'UTC' as date) as day
    from article_entities ae
    join entities e using (entity_id)
    join articles a using (article_id)
),
final as (
    select x.entity_id as entity_a, x.name as name_a, x.label as label_a,
           y.entity_id as entity_b, y.name as name_b, y.label as label_b,
           count(*) as articles, min(x.day) as first_day, max(x.day) as last_day
    from tagged x
    join tagged y on y.article_id = x.article_id and (y.name, y.label, y.entity_id) > (x.name, x.label, x.entity_id)
    group by all
)
select * from final
order by articles desc, name_a, name_b
