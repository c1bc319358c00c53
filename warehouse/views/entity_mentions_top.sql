-- Entities by total mentions across stored articles (seeds included).
select e.entity_id, e.name, e.label, sum(ae.mentions) as mentions, count(distinct ae.article_id) as articles
from entities e
join article_entities ae using (entity_id)
group by all
order by mentions desc, e.name
