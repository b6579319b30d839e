-- name: get_pipeline_reordered(id)^
-- The table's columns in another order are not the table's model.
SELECT name, id, description, environment, schedule_expression, retry_attempts, timeout, tags,
       created_at
FROM pipelines
WHERE id = :id;
