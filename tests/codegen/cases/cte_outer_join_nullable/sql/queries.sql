-- name: pipelines_with_run_counts()
-- count() is non-null inside the CTE, but the LEFT JOIN may find no row for it.
WITH runs AS (
    SELECT pipeline_id, count(*) AS runs
    FROM pipeline_executions
    GROUP BY pipeline_id
)
SELECT p.name, r.runs
FROM pipelines p
LEFT JOIN runs r ON r.pipeline_id = p.id;
