-- name: delete_execution(id)<!
DELETE FROM pipeline_executions WHERE id = :id RETURNING id, status, finished_at;
