-- name: get_pipeline_name(id)$
-- A NOT NULL column, but no row may match: the value is optional.
SELECT name FROM pipelines WHERE id = :id;
