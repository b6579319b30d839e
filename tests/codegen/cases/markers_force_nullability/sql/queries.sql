-- name: pipeline_summaries()
-- "x!" forces non-null, "x?" forces nullable; the marker is not part of the field name.
SELECT p.id AS "id?",
       (SELECT max(e.queued_at) FROM pipeline_executions e WHERE e.pipeline_id = p.id) AS "last_queued!"
FROM pipelines p
WHERE EXISTS (SELECT 1 FROM pipeline_executions e WHERE e.pipeline_id = p.id);
