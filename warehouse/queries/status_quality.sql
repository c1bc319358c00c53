-- `newsflow status`: this week's (the last 7 days') stored articles that are paywalled, teasers or consent pages.
select count(*) as articles,
       count(*) filter (where access = 'paywalled') as paywalled,
       count(*) filter (where is_teaser) as teasers,
       count(*) filter (where is_consent_page) as consent_pages
from articles
where loaded_at >= now() - interval 7 days
