-- Article quality flags (issue 22, flows/text/quality.py): whether the stored text is the article. `access` is
-- 'free' or 'paywalled' (schema.org isAccessibleForFree, content tiers, subscribe prompts, paywall classes);
-- `is_teaser`: the body is much shorter than the page declares, or stops at a subscribe prompt; `is_consent_page`:
-- the body is mostly a cookie or consent notice (stored, but neither tagged nor indexed for dedup). Rows stored
-- before this migration, and rows of batches staged before schema version 3, are null: not assessed.
alter table articles add column access varchar;
alter table articles add column is_teaser boolean;
alter table articles add column is_consent_page boolean;
