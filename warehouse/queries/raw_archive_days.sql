-- Which of the day folders $days (past the retention, flows/warehouse/archive.py) rows still point into:
-- retention never deletes those. The range on the path (it starts with the day) lets zone maps skip the row
-- groups of other days.
select distinct split_part(archive_file, '/', 1)
from raw_archive
where archive_file >= list_min($days::varchar[])
  and archive_file < list_max($days::varchar[]) || '0'  -- '0' sorts right after '/': every file of the last day
  and list_contains($days::varchar[], split_part(archive_file, '/', 1))
