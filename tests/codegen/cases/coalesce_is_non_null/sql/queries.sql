-- name: pipelines_described()
SELECT id, coalesce(description, '') AS description FROM pipelines;
