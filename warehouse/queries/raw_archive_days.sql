-- Day folders of the raw archive that rows still point into: retention never deletes those.
select distinct split_part(archive_file, '/', 1) from raw_archive
