-- name: get_pipeline^
SELECT id FROM pipelines WHERE id = :id;
