-- Entry URLs already in the warehouse (stored or recorded as a duplicate): these pages are not fetched again.
select url from articles where url in (select unnest($urls::varchar[]))
union
select url from duplicates where url in (select unnest($urls::varchar[]))
