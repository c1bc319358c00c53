-- The order in which `newsflow reprocess --step stories` places stored articles: canonical order, i.e. their time on
-- the stories' clock (the earlier of published and fetched, else loaded), then their id as text, as
-- flows/text/stories.py order_key. Copies follow, from stories_copies.
select row_number() over (order by t, article_id::varchar) - 1 as rank, article_id, t
from (
    select article_id, coalesce(least(published_at, fetched_at), published_at, fetched_at, loaded_at) as t
    from articles
    where not coalesce(is_consent_page, false)  -- a consent notice is no story (as dedup skips it)
)
