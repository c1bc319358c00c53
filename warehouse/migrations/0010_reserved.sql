-- Placeholder so this branch's migration 0012 has no gap; the migration of this number from another branch
-- replaces this file at merge.
select 1;
