-- name: get_pipeline(id)^
-- @nullable name
SELECT id FROM pipelines WHERE id = :id;
