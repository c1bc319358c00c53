-- The pointers into archive files that cannot be read (cut short, overwritten, deleted): their pages' HTML is lost,
-- so `article_provenance.has_raw_html` must say so. The articles themselves keep their text.
delete from raw_archive
where list_contains($files::varchar[], archive_file)
