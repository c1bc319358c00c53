-- One warehouse check's outcome (flows/checks.py); a check re-run under the same run id replaces its row.
insert or replace into check_results (run_id, check_name, offending_rows, sample, duration_ms, checked_at)
values ($run_id, $check_name, $offending_rows, $sample, $duration_ms, $checked_at)
