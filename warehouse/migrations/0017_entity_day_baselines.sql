-- Each daily_entity_mentions row carries its baseline: `prior_7d`, the entity's mentions on the 7 days before its
-- day. The report's week of surges scored every entity-day of the week against a sum joined from the 14 days'
-- rows at each render: 124-152 ms of a 214 ms report page at a year's 631k entity-days, where a small warehouse
-- renders the page in 46 ms (docs/benchmarks.md). Each load now recounts the baselines its own rows move (its
-- entities, from each touched day to 7 days after; flows/warehouse/aggregates.py), so the report reads one column.
-- The table is made again, as 0016 did, rather than altered and updated row by row: a year holds 15.8M rows.
create table daily_entity_mentions_baselined (
    day        date not null,
    entity_id  bigint not null,
    mentions   bigint not null,
    articles   bigint not null,
    prior_7d   bigint not null default 0,  -- the entity's mentions on the 7 days before `day`
    primary key (day, entity_id)
);
insert into daily_entity_mentions_baselined
select day, entity_id, mentions, articles,
       coalesce(sum(mentions) over (partition by entity_id order by day
                                    range between interval 7 day preceding and interval 1 day preceding), 0)::bigint
from daily_entity_mentions
order by day;
drop table daily_entity_mentions;
alter table daily_entity_mentions_baselined rename to daily_entity_mentions;
