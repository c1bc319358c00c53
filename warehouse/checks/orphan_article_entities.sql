-- Invariant: every article_entities row points at a stored article and a stored entity. Why: DuckDB enforces no
-- foreign keys here, and an orphan link counts mentions of a story or a name that no longer exists (entity
-- timelines, surges and co-mentions would count it).
-- Scoped by $since (flows/warehouse/checks.py): rows with load_seq > $since, those loaded since this check last
-- held, up to $until (the counter read before the pass); a full pass gives -1.
-- The new links come from a join with the range of new load numbers: the planner then sizes them by that range
-- (none in a quiet run, a few hundred rows a load) and hashes them, probing the articles; filtered by
-- `load_seq > $since` alone they were guessed a fifth of the table, larger than `articles`, so every pass hashed
-- all the articles (0.3-0.6 s of every quiet run at 1M, docs/checks.md).
with new as (
    select ae.article_id, ae.entity_id
    from range($since + 1, $until + 1) s(seq)
    join article_entities ae on ae.load_seq = s.seq
    where ae.load_seq > $since
)
select n.article_id, n.entity_id,
       not exists (select 1 from articles a where a.article_id = n.article_id) as missing_article,
       not exists (select 1 from entities e where e.entity_id = n.entity_id) as missing_entity
from new n
where not exists (select 1 from articles a where a.article_id = n.article_id)
   or not exists (select 1 from entities e where e.entity_id = n.entity_id)
order by n.article_id, n.entity_id
