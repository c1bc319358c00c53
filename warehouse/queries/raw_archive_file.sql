-- The archive file (relative to the raw folder) holding a URL's raw HTML.
select archive_file from raw_archive where url = $url
