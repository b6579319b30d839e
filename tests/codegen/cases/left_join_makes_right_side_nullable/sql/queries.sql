-- name: list_pipelines_with_steps()
SELECT p.id, p.name, s.id AS step_id, s.position
FROM pipelines p
LEFT JOIN pipeline_steps s ON s.pipeline_id = p.id
ORDER BY p.name, s.position;
