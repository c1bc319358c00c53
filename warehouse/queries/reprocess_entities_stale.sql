-- Articles to re-tag: all of them, or only those tagged by another pipeline (or never tagged).
select article_id
from articles
where $all or ner_pipeline is distinct from $pipeline
order by article_id
