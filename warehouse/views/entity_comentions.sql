-- Pairs of entities mentioned in the same stored article (each pair once, entity_a's name sorts first):
-- how many articles, and the first and last publication day (UTC) they appeared together.
-- The self-join and the grouping carry ids and a day only, and the names are joined to the (far fewer) pairs
-- after: the pairs grow with the square of an article's entities, and rows carrying both names made them spill
-- gigabytes at 100k articles (issue 23).
with tagged as (
    select ae.article_id, ae.entity_id,
           cast(coalesce(a.published_at, a.fetched_at, a.loaded_at) at time zone 'UTC' as date) as day
    from article_entities ae
    join articles a using (article_id)
),
pairs as (
    select x.entity_id as lo, y.entity_id as hi,
           count(*) as articles, min(x.day) as first_day, max(x.day) as last_day
    from tagged x
    join tagged y on y.article_id = x.article_id and y.entity_id > x.entity_id
    group by all
),
named as (
    select p.*, l.name as name_lo, l.label as label_lo, h.name as name_hi, h.label as label_hi,
           (h.name, h.label, h.entity_id) < (l.name, l.label, l.entity_id) as swap
    from pairs p
    join entities l on l.entity_id = p.lo
    join entities h on h.entity_id = p.hi
),
final as (
    select if(swap, hi, lo) as entity_a, if(swap, name_hi, name_lo) as name_a, if(swap, label_hi, label_lo) as label_a,
           if(swap, lo, hi) as entity_b, if(swap, name_lo, name_hi) as name_b, if(swap, label_lo, label_hi) as label_b,
           articles, first_day, last_day
    from named
)
select * from final
order by articles desc, name_a, name_b
