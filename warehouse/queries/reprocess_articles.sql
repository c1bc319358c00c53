-- The stored articles of one reprocessing batch.
select article_id, url, feed, entry_guid, title, text, language, is_seed, ner_pipeline, is_consent_page
from articles
where article_id in (select unnest($ids::bigint[]))
order by article_id
