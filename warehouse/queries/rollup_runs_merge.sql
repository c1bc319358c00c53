-- The old runs rows (temp table rollup_old) added to their day's, flow's and status's summary.
merge into run_days t
using (
    select (started_at at time zone 'UTC')::date as day, flow, status, count(*) as runs,
           coalesce(sum(epoch(finished_at - started_at)), 0)::double as duration_s,
           coalesce(sum(feeds_ok), 0)::bigint as feeds_ok, coalesce(sum(feeds_failed), 0)::bigint as feeds_failed,
           coalesce(sum(entries_new), 0)::bigint as entries_new,
           coalesce(sum(pages_fetched), 0)::bigint as pages_fetched,
           coalesce(sum(articles_new), 0)::bigint as articles_new,
           coalesce(sum(duplicates_exact), 0)::bigint as duplicates_exact,
           coalesce(sum(duplicates_near), 0)::bigint as duplicates_near,
           coalesce(sum(entity_mentions), 0)::bigint as entity_mentions
    from rollup_old
    group by all
) d
on t.day = d.day and t.flow = d.flow and t.status = d.status
when matched then update set
    runs = t.runs + d.runs, duration_s = t.duration_s + d.duration_s, feeds_ok = t.feeds_ok + d.feeds_ok,
    feeds_failed = t.feeds_failed + d.feeds_failed, entries_new = t.entries_new + d.entries_new,
    pages_fetched = t.pages_fetched + d.pages_fetched, articles_new = t.articles_new + d.articles_new,
    duplicates_exact = t.duplicates_exact + d.duplicates_exact,
    duplicates_near = t.duplicates_near + d.duplicates_near, entity_mentions = t.entity_mentions + d.entity_mentions
when not matched then insert by name
