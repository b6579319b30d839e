-- name: execution_labels()
SELECT id,
       CASE WHEN status = 'failed' THEN 'bad' END AS label,
       CASE WHEN status = 'failed' THEN 'bad' ELSE 'ok' END AS verdict
FROM pipeline_executions;
