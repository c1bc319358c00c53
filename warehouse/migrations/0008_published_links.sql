-- Links as the feed published them (issue 22). `url` stays the key (the link's normalised spelling: entry dedup,
-- article ids, joins with duplicates and page_fetches); `link` is what was fetched, as published, made absolute
-- (docs/fetching.md lists the only changes made to it). Rows stored before this migration have no link.
alter table entries add column link varchar;
alter table articles add column link varchar;
