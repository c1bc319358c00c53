-- article_entities without its primary key (article_id, entity_id). Each load's `insert or ignore` of its links
-- probed that key's index, and each checkpoint wrote back the index blocks the links dirtied (random article ids
-- spread them over the whole index): at a year's 20.8M links, 90 ms of each 128-article load and about a fifth of
-- the bytes a checkpoint writes (docs/schema.md). The key still holds: the loader writes links only for the
-- articles its own load stored (warehouse/queries/insert_article_links.sql), `reprocess` deletes an article's
-- links before writing one per key again, and the check `duplicate_article_entities` looks for two rows of one key.
create table article_entities_unkeyed (
    article_id    bigint not null,
    entity_id     bigint not null,
    mentions      integer not null,
    load_seq      bigint default 0
);
insert into article_entities_unkeyed select article_id, entity_id, mentions, load_seq from article_entities;
drop table article_entities;
alter table article_entities_unkeyed rename to article_entities;
