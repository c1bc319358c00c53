-- The entity links of a load (q_rows: one row per article and entity, stamped with this load's number $seq).
-- article_entities has no key index (migration 0016), so the key is kept here: a link is written only for an
-- article whose row this very load wrote, which no earlier load can have linked; an article the load skipped as
-- stored already keeps the links it has. Its `load_seq` is the range the row groups are pruned by.
insert into article_entities by name
select r.*
from q_rows r
where r.article_id in (select a.article_id from articles a where a.load_seq = $seq)
