-- prior_7d (the entity's mentions on the 7 days before) of every daily_entity_mentions row: for a rebuild
-- (flows/warehouse/aggregates.py rebuild_aggregates) and for tables filled without the loader.
select day, entity_id,
       coalesce(sum(mentions) over (partition by entity_id order by day
                                    range between interval 7 day preceding and interval 1 day preceding), 0)::bigint
           as prior_7d
from daily_entity_mentions
