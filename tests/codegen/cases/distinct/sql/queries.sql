-- name: distinct_statuses(pipeline_id)
SELECT DISTINCT status FROM pipeline_executions WHERE pipeline_id = :pipeline_id;
