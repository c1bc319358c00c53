-- Record how each article of a re-tagged batch was tagged: the pipeline version, or why it was not tagged.
-- q_tagged(article_id, ner_pipeline, ner_skip_reason) is the batch, registered by flows/ops/reprocess.py.
update articles
set ner_pipeline = q.ner_pipeline, ner_skip_reason = q.ner_skip_reason
from q_tagged q
where articles.article_id = q.article_id
