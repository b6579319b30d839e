-- name: count_pipelines()$
-- count(*) without GROUP BY always yields one non-null row.
SELECT count(*) AS pipeline_count FROM pipelines;
