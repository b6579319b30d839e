-- name: executions_with_pipeline(status)
-- A table's row as one column comes back as that table's model.
SELECT e.id, p AS pipeline
FROM pipeline_executions e
JOIN pipelines p ON p.id = e.pipeline_id
WHERE e.status = :status;

-- name: money_of(id)$
SELECT ROW(cost, 'EUR')::money_amount AS amount FROM pipeline_executions WHERE id = :id;
