-- Mark a batch as tagged by the current pipeline.
update articles
set ner_pipeline = $pipeline
where article_id in (select unnest($ids::bigint[]))
