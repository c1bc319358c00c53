-- Invariant: every stored article was tagged by the NER pipeline (ner_pipeline) or says why it was not
-- (ner_skip_reason). Why: an article with neither silently has no entities, so every entity count, timeline and
-- surge under-reports it and nobody knows to re-tag it (`newsflow reprocess --step entities`).
-- Scoped by $since (flows/warehouse/checks.py): rows with load_seq > $since, those loaded since this check last
-- held; a full pass gives -1.
select article_id, url, run_id, language
from articles
where load_seq > $since
  and ner_pipeline is null
  and ner_skip_reason is null
order by loaded_at, article_id
