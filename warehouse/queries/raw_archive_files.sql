-- Every raw-HTML archive file a pointer names (relative to the `.raw` folder), for the maintenance flow's check
-- that each is a whole Parquet file (flows/warehouse/archive.py `unreadable`).
select distinct archive_file
from raw_archive
order by archive_file
