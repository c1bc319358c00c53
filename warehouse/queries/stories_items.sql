-- The articles of ranks [$lo, $hi) of q_order (stories_order), as the clusterer reads them: title, text, time,
-- outlet, language and the names of their entities.
select o.article_id, a.url, a.title, a.text, o.t,
       coalesce(a.feed, a.site_name, case when a.is_seed then 'seed' end) as outlet, a.language,
       (select list(e.name order by e.name) from article_entities ae join entities e using (entity_id)
        where ae.article_id = o.article_id) as names,
       null::bigint as copy_of
from q_order o
join articles a using (article_id)
where o.rank >= $lo and o.rank < $hi
order by o.rank
