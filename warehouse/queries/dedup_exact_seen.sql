-- Batch documents whose normalised text equals that of a copy recorded earlier in `duplicates`:
-- exact copies of a copy point at the same original.
select q.doc, min(d.duplicate_of) as duplicate_of  -- min: the same answer whatever the scan order
from q_docs q
join duplicates d on d.text_hash = q.text_hash
group by q.doc
