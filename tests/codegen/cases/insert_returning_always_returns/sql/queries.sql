-- name: create_pipeline(name, description)<!
-- Create a pipeline and return it whole.
-- @nullable description
INSERT INTO pipelines (name, description)
VALUES (:name, :description)
RETURNING id, name, description, environment, schedule_expression, retry_attempts, timeout,
          tags, created_at;
