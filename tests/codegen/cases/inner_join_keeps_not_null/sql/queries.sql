-- name: list_steps_with_plugins(pipeline_id)
SELECT s.position, pl.name AS plugin_name, pl.variant
FROM pipeline_steps s
JOIN plugins pl ON pl.id = s.plugin_id
WHERE s.pipeline_id = :pipeline_id
ORDER BY s.position;
