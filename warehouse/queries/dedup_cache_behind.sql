-- Articles indexed by loads the lookup cache does not hold yet (the tail a lookup reads from the tables).
select count(*) from articles where index_seq > $after
