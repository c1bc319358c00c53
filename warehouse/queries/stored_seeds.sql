-- Seed files already loaded, with the hash of the file they were loaded from.
select seed_file, seed_file_hash from articles where is_seed
