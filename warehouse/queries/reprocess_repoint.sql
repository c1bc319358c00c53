-- Copies that pointed at a demoted article now point at that article's original.
update duplicates d
set duplicate_of = q.duplicate_of
from q_demoted q
where d.duplicate_of = q.article_id
