-- `newsflow stories`: stories seen since $since (null: all) covered by at least $min_outlets outlets, most outlets
-- first, then most articles, then the latest; with who covered each first.
select s.story_id, s.title, s.first_seen, s.last_seen, s.articles, s.originals, s.outlets, s.languages,
       s.top_entities, f.outlet as first_outlet
from stories s
left join story_first_coverage f using (story_id)
where ($since is null or s.last_seen >= $since)
  and s.outlets >= $min_outlets
order by s.outlets desc, s.articles desc, s.last_seen desc, s.story_id
limit $limit
