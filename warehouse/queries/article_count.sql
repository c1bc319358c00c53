-- How many articles the warehouse holds (whether a run may build a missing search index; a backup's manifest).
select count(*) from articles;
