-- name: recent_failures(since)
WITH failed AS (
    SELECT pipeline_id, count(*) AS failures
    FROM pipeline_executions
    WHERE status = 'failed' AND queued_at >= :since
    GROUP BY pipeline_id
)
SELECT p.name, f.failures
FROM failed f
JOIN pipelines p ON p.id = f.pipeline_id
ORDER BY f.failures DESC;
