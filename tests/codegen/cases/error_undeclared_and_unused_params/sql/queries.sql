-- name: find_pipeline(id, unused_name)^
SELECT id, name
FROM pipelines
WHERE id = :id
  AND name = :other_name;
