-- Every feed's state, failures and latest outcome, failing feeds first (the order of the feed_health view).
select feed, state, consecutive_failures, last_success_at, last_attempt_at, last_outcome,
       coalesce(last_error, last_outcome_error) as error, fetches_7d, failures_7d
from feed_health
