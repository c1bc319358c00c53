-- Feeds and articles that a demo run cannot have written: from anywhere but the loopback server or the seeds.
select
    (select count(*) from feeds where url not like 'http://127.0.0.1:%')
    + (select count(*) from articles where url not like 'http://127.0.0.1:%' and url not like 'seed:%')
