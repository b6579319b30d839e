-- name: list_pipelines(after_name, page_size)
-- A page of pipelines by name (keyset pagination).
SELECT id, name, created_at
FROM pipelines
WHERE name > :after_name
ORDER BY name
LIMIT :page_size;
