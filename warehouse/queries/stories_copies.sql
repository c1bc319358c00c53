-- Every recorded copy, with its time on the stories' clock (the earlier of its entry's published time and when it
-- was found), for `newsflow reprocess --step stories` to put in its original's story.
select d.url, d.title, coalesce(least(e.published_at, d.seen_at), d.seen_at) as t, d.feed, a.language,
       d.duplicate_of
from duplicates d
join articles a on a.article_id = d.duplicate_of
left join entries e on e.feed = d.feed and e.guid = d.entry_guid
order by t, d.url
