-- name: pipeline_environment(id)^
SELECT environment, settings_schema FROM pipelines, plugins WHERE pipelines.id = :id LIMIT 1;

-- name: set_environment(id, environment)!
UPDATE pipelines SET environment = :environment WHERE id = :id;
