-- name: busy_pipelines(minimum)
SELECT t.pipeline_id, t.runs
FROM (
    SELECT pipeline_id, count(*) AS runs FROM pipeline_executions GROUP BY pipeline_id
) AS t
WHERE t.runs >= :minimum;
