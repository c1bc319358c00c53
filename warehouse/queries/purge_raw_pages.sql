-- Raw HTML past its retention ([warehouse] raw_html_retention_days); the extracted article stays.
delete from raw_pages
where fetched_at < now() - to_days($days::integer)
