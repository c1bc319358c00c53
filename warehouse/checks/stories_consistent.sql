-- Invariant: every story is consistent with its members (story_articles): no story without members, no members
-- without a story row, its counts and first/last seen those of its members, and no article in two stories (the key
-- holds it on a DuckDB file; a DuckLake has no keys). Why: `newsflow stories`, the report and the run's artifact
-- read `stories` alone, so a stale row shows a story that is not there. Bounded to the stories a load touched in the
-- last 7 days (updated_at), so the check does not read every story ever made. Fix: `newsflow reprocess --step stories`.
with recent as (
    select * from stories where updated_at >= now() - interval 7 days
),
members as (
    select story_id, count(*) as n, count(*) filter (where copy_of is null) as originals,
           min(published) as first_seen, max(published) as last_seen
    from story_articles
    where story_id in (select story_id from recent)
    group by story_id
),
twice as (
    select article_id, min(story_id) as story_id
    from story_articles
    where story_id in (select story_id from recent)
    group by article_id
    having count(distinct story_id) > 1
),
final as (
    select 'story without members' as problem, r.story_id, null::bigint as article_id
    from recent r left join members m using (story_id)
    where m.story_id is null
    union all
    select 'members without a story row', sa.story_id, min(sa.article_id)
    from story_articles sa
    where sa.placed_at >= now() - interval 7 days
      and not exists (select 1 from stories s where s.story_id = sa.story_id)
    group by sa.story_id
    union all
    select 'story row does not match its members', r.story_id, null
    from recent r join members m using (story_id)
    where r.articles != m.n or r.originals != m.originals
       or r.first_seen != m.first_seen or r.last_seen != m.last_seen
    union all
    select 'article in more than one story', story_id, article_id
    from twice
)
select * from final
order by problem, story_id, article_id
