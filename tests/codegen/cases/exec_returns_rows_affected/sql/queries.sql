-- name: delete_pipeline(id)!
-- Delete one pipeline; returns how many rows went.
DELETE FROM pipelines WHERE id = :id;

-- name: retry_failed(pipeline_id)!
UPDATE pipeline_executions SET status = 'queued'
WHERE pipeline_id = :pipeline_id AND status = 'failed';
