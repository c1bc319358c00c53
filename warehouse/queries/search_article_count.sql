-- How many articles the warehouse holds: whether a run may build a missing search index itself.
select count(*) from articles;
