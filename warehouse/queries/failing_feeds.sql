-- Feeds failing at least $alert_after runs in a row: the condition newsflow alerts on.
select feed, url, consecutive_failures, last_error, last_success_at, disabled
from feeds
where consecutive_failures >= $alert_after
order by consecutive_failures desc, feed
