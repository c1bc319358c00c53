-- Where the warehouse stands for the search index (flows/warehouse/search_index.py, _Mark): the last load's
-- sequence number and the number of stored articles (both read from metadata, not by a scan).
select (select max(seq) from load_sequence) as load_seq,
       (select count(*) from articles) as stored
