-- name: pipeline_exists(name)$
SELECT EXISTS (SELECT 1 FROM pipelines WHERE name = :name) AS found;
