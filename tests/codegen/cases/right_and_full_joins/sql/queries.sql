-- name: steps_right_join()
SELECT p.name AS pipeline_name, s.position
FROM pipelines p
RIGHT JOIN pipeline_steps s ON s.pipeline_id = p.id;

-- name: steps_full_join()
SELECT p.name AS pipeline_name, s.position
FROM pipelines p
FULL JOIN pipeline_steps s ON s.pipeline_id = p.id;
