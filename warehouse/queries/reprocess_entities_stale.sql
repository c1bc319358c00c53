-- Articles to re-tag: all of them, or only those not tagged by one of the configured pipelines (or never tagged).
select article_id
from articles
where $all or ner_pipeline is null or not list_contains($pipelines::varchar[], ner_pipeline)
order by article_id
