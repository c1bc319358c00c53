-- Pointers to raw HTML past its retention ([warehouse] raw_html_retention_days); the files go after (rawstore).
delete from raw_archive
where fetched_at < now() - to_days($days::integer)
