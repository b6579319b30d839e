-- name: execution_history(pipeline_id)
SELECT id,
       row_number() OVER (ORDER BY queued_at) AS run_number,
       lag(status) OVER (ORDER BY queued_at) AS previous_status
FROM pipeline_executions
WHERE pipeline_id = :pipeline_id;
