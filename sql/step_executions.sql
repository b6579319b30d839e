-- Step executions: the run of each step within a pipeline execution. The worker that holds the
-- pipeline execution writes them; no claiming of their own.

-- name: create_step_executions(pipeline_execution_id)
-- @vet allow unbounded: one row per step of one pipeline: tens
-- Queue one step execution per current step of the execution's pipeline.
--
-- In position order; what a worker does right after claiming.
INSERT INTO step_executions (
    pipeline_execution_id, pipeline_execution_queued_at, step_id, position
)
SELECT e.id, e.queued_at, s.id, s.position
FROM pipeline_executions AS e
JOIN pipeline_steps AS s ON s.pipeline_id = e.pipeline_id
WHERE e.id = :pipeline_execution_id
ORDER BY s.position
RETURNING id, pipeline_execution_id, step_id, position, status, started_at, finished_at, rows_in,
          rows_out, error, updated_at, pipeline_execution_queued_at;

-- name: create_step_execution(pipeline_execution_id, step_id, position)<!
-- Queue one step execution; a position used in the execution already is a Conflict.
-- @nullable step_id
INSERT INTO step_executions (
    pipeline_execution_id, pipeline_execution_queued_at, step_id, position
)
VALUES (
    :pipeline_execution_id,
    -- An unknown execution has none: -infinity matches no execution, so the foreign key reports
    -- it (an InvalidReference) instead of the NOT NULL constraint.
    coalesce(
        (SELECT queued_at FROM pipeline_executions WHERE id = :pipeline_execution_id),
        '-infinity'
    ),
    :step_id,
    :position
)
RETURNING id, pipeline_execution_id, step_id, position, status, started_at, finished_at, rows_in,
          rows_out, error, updated_at, pipeline_execution_queued_at;

-- name: get_step_execution(id)^
-- A step execution by id.
SELECT id, pipeline_execution_id, step_id, position, status, started_at, finished_at, rows_in,
       rows_out, error, updated_at, pipeline_execution_queued_at
FROM step_executions
WHERE id = :id;

-- name: list_step_executions(pipeline_execution_id)
-- @vet allow unbounded: one row per step of one execution: tens
-- The step executions of a pipeline execution, in position order.
SELECT id, pipeline_execution_id, step_id, position, status, started_at, finished_at, rows_in,
       rows_out, error, updated_at, pipeline_execution_queued_at
FROM step_executions
WHERE pipeline_execution_id = :pipeline_execution_id
ORDER BY position;

-- name: mark_step_execution_running(id)<!
-- Start a queued step execution; None when it is not queued.
UPDATE step_executions
SET status = 'running', started_at = now()
WHERE id = :id AND status = 'queued'
RETURNING id, pipeline_execution_id, step_id, position, status, started_at, finished_at, rows_in,
          rows_out, error, updated_at, pipeline_execution_queued_at;

-- name: mark_step_execution_succeeded(id, rows_in, rows_out)<!
-- Finish a running step execution with its row counts; None when it is not running.
UPDATE step_executions
SET status = 'succeeded', finished_at = now(), rows_in = :rows_in, rows_out = :rows_out
WHERE id = :id AND status = 'running'
RETURNING id, pipeline_execution_id, step_id, position, status, started_at, finished_at, rows_in,
          rows_out, error, updated_at, pipeline_execution_queued_at;

-- name: mark_step_execution_failed(id, rows_in, rows_out, error)<!
-- Finish a running step execution with an error; None when it is not running.
UPDATE step_executions
SET status = 'failed', finished_at = now(), rows_in = :rows_in, rows_out = :rows_out,
    error = :error
WHERE id = :id AND status = 'running'
RETURNING id, pipeline_execution_id, step_id, position, status, started_at, finished_at, rows_in,
          rows_out, error, updated_at, pipeline_execution_queued_at;

-- name: cancel_step_executions(pipeline_execution_id)!
-- Cancel the queued and running steps of an execution; returns how many.
--
-- For an execution that failed or was cancelled.
UPDATE step_executions
SET status = 'cancelled', finished_at = now()
WHERE pipeline_execution_id = :pipeline_execution_id AND status IN ('queued', 'running');

-- name: delete_step_execution(id)<!
-- Remove a step execution; None when there is no such step execution.
DELETE FROM step_executions
WHERE id = :id
RETURNING id, pipeline_execution_id, step_id, position, status, started_at, finished_at, rows_in,
          rows_out, error, updated_at, pipeline_execution_queued_at;
