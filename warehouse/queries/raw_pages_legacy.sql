-- Raw HTML stored in the table before 0003_raw_html_archive (encoding, compressed bytes).
select encoding, html from raw_pages where url = $url
