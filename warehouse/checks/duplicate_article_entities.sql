-- Invariant: one article_entities row per article and entity. Why: the table declares no key (migration 0016: its
-- index was rewritten at every checkpoint), so nothing but the loader keeps it; a second row would count an
-- entity's mentions twice in the timelines, surges and co-mentions.
-- Scoped by $since (flows/warehouse/checks.py): the links loaded since this check last held, up to $until; a full
-- pass gives -1 and reads every link. A load writes all the links of the articles it stores, and `reprocess`
-- deletes an article's links before writing them again with a new number, so two rows of one key written by
-- different loads are found by the full pass (the maintenance flow's).
with new as (
    select ae.article_id, ae.entity_id
    from range($since + 1, $until + 1) s(seq)
    join article_entities ae on ae.load_seq = s.seq
    where ae.load_seq > $since
)
select article_id, entity_id, count(*) as rows
from new
group by article_id, entity_id
having count(*) > 1
order by article_id, entity_id
