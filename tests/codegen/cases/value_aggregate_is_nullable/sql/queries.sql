-- name: latest_finish()$
-- max() over no rows is NULL.
SELECT max(finished_at) AS latest FROM pipeline_executions;
