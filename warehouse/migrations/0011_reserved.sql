-- Placeholder: the version number is taken by another branch's migration; drop this file at merge.
select 1;
