-- The clusterer's live state in the shape its per-batch lookups read (issue 25, docs/stories.md "Cost").
-- story_live: strings instead of lists, a centroid's terms and weights space-separated (terms are runs of letters
-- and digits, flows/text/storyterms.py), entities and languages with their counts as JSON objects: a batch reads a
-- few hundred stories, and DuckDB reads every row of the table's list columns to find them, several times the
-- time of the same data as strings. The centroid's two strings are stored uncompressed: reading 30,000 of them
-- compressed (FSST, DuckDB's choice) to find a few hundred costs 5-8 times as much (about 50 MB for 30,000 stories).
-- story_keys: each posting carries the hash of its key (joined on, an integer instead of two strings) and its
-- story's last write-up (filtered on, with no join to story_live); both are rewritten with the story's keys.
create temp table q_story_live as
select story_id, first_article, last_article, size, array_to_string(terms, ' ') as terms,
       array_to_string(weights, ' ') as weights, to_json(map(entities, entity_counts))::varchar as entities,
       to_json(map(languages, language_counts))::varchar as languages
from story_live;
drop table story_live;
create table story_live (
    story_id      bigint primary key,
    first_article timestamptz not null,
    last_article  timestamptz not null,
    size          integer not null,
    terms         varchar using compression 'uncompressed' not null,    -- centroid terms, space-separated ...
    weights       varchar using compression 'uncompressed' not null,    -- ... their quantised weights, in that order
    entities      varchar not null,           -- JSON object: entity -> write-ups naming it
    languages     varchar not null            -- JSON object: language -> write-ups in it
);
insert into story_live select * from q_story_live;
drop table q_story_live;

create temp table q_story_keys as
select md5_number_upper(k.kind || k.key) as h, k.key, k.kind, k.story_id, epoch_us(l.last_article) as last_article
from story_keys k join story_live l using (story_id);
drop table story_keys;
create table story_keys (
    h             ubigint not null,           -- md5_number_upper(kind || key): what a lookup joins on
    key           varchar not null,           -- a centroid term or an entity name
    kind          varchar not null,           -- t | e
    story_id      bigint not null,
    last_article  bigint not null             -- the story's last write-up (story_live.last_article), epoch microseconds
);
insert into story_keys select * from q_story_keys;
drop table q_story_keys;
