-- The report's top stories: stories of more than one article seen in the 30 days up to the newest story's last
-- article, most outlets first, then most articles, then the latest.
select story_id, title, first_seen, last_seen, articles, originals, outlets, languages, top_entities
from stories
where articles > 1
  and last_seen >= (select max(last_seen) from stories) - interval 30 days
order by outlets desc, articles desc, last_seen desc, story_id
limit $limit
