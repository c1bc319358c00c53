-- article_entities without its primary key (article_id, entity_id). DuckDB keeps a key's index whole and writes
-- the blocks a load dirtied back at each checkpoint; entity links carry random article ids, so the 2,560 links of
-- a 128-article load touched nearly every block of the index: at a year's 20.8M links, 235-246 MiB written and
-- 0.16-1.1 s per checkpoint (one a run), where the table without it writes about 1 MiB (docs/schema.md). The key
-- still holds: the loader writes links only for the articles its own load stored
-- (warehouse/queries/insert_article_links.sql), `reprocess` deletes an article's links before writing them again,
-- and the check `duplicate_article_entities` looks for two rows of one key.
create table article_entities_unkeyed (
    article_id    bigint not null,
    entity_id     bigint not null,
    mentions      integer not null,
    load_seq      bigint default 0
);
insert into article_entities_unkeyed select article_id, entity_id, mentions, load_seq from article_entities;
drop table article_entities;
alter table article_entities_unkeyed rename to article_entities;
