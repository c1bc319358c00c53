-- Invariant: every article_entities row points at a stored article and a stored entity. Why: DuckDB enforces no
-- foreign keys here, and an orphan link counts mentions of a story or a name that no longer exists (entity
-- timelines, surges and co-mentions would count it).
-- Scoped by $since (flows/warehouse/checks.py): rows with load_seq > $since, those loaded since this check last
-- held; a full pass gives -1.
select ae.article_id, ae.entity_id,
       not exists (select 1 from articles a where a.article_id = ae.article_id) as missing_article,
       not exists (select 1 from entities e where e.entity_id = ae.entity_id) as missing_entity
from article_entities ae
where ae.load_seq > $since
  and (not exists (select 1 from articles a where a.article_id = ae.article_id)
       or not exists (select 1 from entities e where e.entity_id = ae.entity_id))
order by ae.article_id, ae.entity_id
