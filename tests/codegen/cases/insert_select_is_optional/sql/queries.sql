-- name: copy_pipeline(source_id, new_name)<!
-- INSERT ... SELECT may insert nothing.
INSERT INTO pipelines (name, description, environment)
SELECT :new_name, description, environment FROM pipelines WHERE id = :source_id
RETURNING id;
