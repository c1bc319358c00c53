-- The order in which reprocessing re-decides duplicates: seeds first, then articles in the order they were stored.
-- An article can only become a duplicate of one earlier in this order, as at ingest. Consent pages are left out:
-- dedup skips them, at ingest and here (never indexed, never a copy).
select article_id, is_seed
from articles
where not coalesce(is_consent_page, false)
order by is_seed desc, loaded_at, article_id
