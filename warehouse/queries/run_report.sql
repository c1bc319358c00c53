-- Failing feeds (this run's failures and feeds over the alert threshold) for the run report.
select f.feed, f.url, f.consecutive_failures, f.last_error, f.last_success_at, f.disabled, f.next_fetch_at
from feeds f
where f.consecutive_failures > 0 or f.disabled
order by f.consecutive_failures desc, f.feed
