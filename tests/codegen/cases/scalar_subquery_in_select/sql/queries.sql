-- name: pipelines_with_step_count()
-- A scalar subquery is NULL when it finds no row; count() always finds one.
SELECT p.id,
       (SELECT count(*) FROM pipeline_steps s WHERE s.pipeline_id = p.id) AS step_count,
       (SELECT s.position FROM pipeline_steps s WHERE s.pipeline_id = p.id
        ORDER BY s.position LIMIT 1) AS first_position
FROM pipelines p;
