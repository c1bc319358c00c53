-- The entities most mentioned in the articles a run stored.
select e.name, e.label, sum(ae.mentions) as mentions, count(*) as articles
from articles a
join article_entities ae using (article_id)
join entities e using (entity_id)
where a.run_id = $run_id
group by e.name, e.label
order by mentions desc, e.name
limit $limit
