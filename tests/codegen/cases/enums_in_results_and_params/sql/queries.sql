-- name: list_by_status(status)
SELECT id, status FROM pipeline_executions WHERE status = :status ORDER BY id;

-- name: list_by_statuses(statuses)
SELECT id FROM pipeline_executions WHERE status = ANY(:statuses) ORDER BY id;

-- name: statuses_of_pipeline(pipeline_id)$
SELECT array_agg(status ORDER BY id) FROM pipeline_executions WHERE pipeline_id = :pipeline_id;
