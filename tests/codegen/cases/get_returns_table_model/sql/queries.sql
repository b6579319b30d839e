-- name: get_pipeline(id)^
-- Get one pipeline by id: all of its columns, in table order, reuse the Pipeline model.
SELECT id, name, description, environment, schedule_expression, retry_attempts, timeout, tags,
       created_at
FROM pipelines
WHERE id = :id;
