-- Pipelines and their ordered steps.
-- Keyset pages: pass the last row's sort key as `after_*`, or None for the first page.

-- name: get_pipeline(id)^
-- A pipeline by id (without its steps: see get_pipeline_with_steps, list_pipeline_steps).
SELECT id, name, description, environment_variables, schedule_expression, timezone,
       max_concurrent_executions, timeout_seconds, retry_attempts, retry_delay_seconds, is_paused,
       created_at, updated_at
FROM pipelines
WHERE id = :id;

-- name: get_pipeline_by_name(name)^
-- A pipeline by its unique name.
SELECT id, name, description, environment_variables, schedule_expression, timezone,
       max_concurrent_executions, timeout_seconds, retry_attempts, retry_delay_seconds, is_paused,
       created_at, updated_at
FROM pipelines
WHERE name = :name;

-- name: lock_pipeline(id)^
-- A pipeline, locked until the end of the transaction; None when there is none.
--
-- Units of work that write a configuration version take it first: it serialises concurrent
-- changes of one pipeline (version numbers, steps) and gives the audit row its `before`.
SELECT id, name, description, environment_variables, schedule_expression, timezone,
       max_concurrent_executions, timeout_seconds, retry_attempts, retry_delay_seconds, is_paused,
       created_at, updated_at
FROM pipelines
WHERE id = :id
FOR NO KEY UPDATE;

-- name: get_pipeline_with_steps(id)^
-- A pipeline with its steps in position order, each paired with its plugin: one round trip.
-- @json steps: list[tuple[PipelineStep, Plugin]]
SELECT p.id, p.name, p.description, p.environment_variables, p.schedule_expression, p.timezone,
       p.max_concurrent_executions, p.timeout_seconds, p.retry_attempts, p.retry_delay_seconds,
       p.is_paused, p.created_at, p.updated_at,
       coalesce(
           (SELECT jsonb_agg(jsonb_build_array(to_jsonb(s), to_jsonb(pl)) ORDER BY s.position)
            FROM pipeline_steps AS s
            JOIN plugins AS pl ON pl.id = s.plugin_id
            WHERE s.pipeline_id = p.id),
           '[]'::jsonb
       ) AS steps
FROM pipelines AS p
WHERE p.id = :id;

-- name: list_pipelines(after_name, limit)
-- A page of pipelines sorted by name; after_name None for the first page.
-- @nullable after_name
SELECT id, name, description, environment_variables, schedule_expression, timezone,
       max_concurrent_executions, timeout_seconds, retry_attempts, retry_delay_seconds, is_paused,
       created_at, updated_at
FROM pipelines
WHERE name > coalesce(:after_name::text, '')
ORDER BY name
LIMIT :limit;

-- name: list_scheduled_pipelines(after_name, limit)
-- A page of the pipelines the scheduler queues (a schedule and not paused), sorted by name.
-- @nullable after_name
SELECT id, name, schedule_expression AS "schedule_expression!", timezone, updated_at
FROM pipelines
WHERE schedule_expression IS NOT NULL AND NOT is_paused
  AND name > coalesce(:after_name::text, '')
ORDER BY name
LIMIT :limit;

-- name: create_pipeline(name, description, environment_variables, schedule_expression, timezone, max_concurrent_executions, timeout_seconds, retry_attempts, retry_delay_seconds, is_paused)<!
-- Add a pipeline (without steps); a name taken is a Conflict, a bad limit a CheckViolation.
-- @nullable schedule_expression
-- @nullable timeout_seconds
INSERT INTO pipelines (
    name, description, environment_variables, schedule_expression, timezone,
    max_concurrent_executions, timeout_seconds, retry_attempts, retry_delay_seconds, is_paused
)
VALUES (
    :name, :description, :environment_variables, :schedule_expression, :timezone,
    :max_concurrent_executions, :timeout_seconds, :retry_attempts, :retry_delay_seconds, :is_paused
)
RETURNING id, name, description, environment_variables, schedule_expression, timezone,
          max_concurrent_executions, timeout_seconds, retry_attempts, retry_delay_seconds,
          is_paused, created_at, updated_at;

-- name: update_pipeline(id, name, description, environment_variables, schedule_expression, timezone, max_concurrent_executions, timeout_seconds, retry_attempts, retry_delay_seconds, is_paused)<!
-- Replace a pipeline's settings (not its steps); None when there is no such pipeline.
-- @nullable schedule_expression
-- @nullable timeout_seconds
UPDATE pipelines
SET name = :name, description = :description, environment_variables = :environment_variables,
    schedule_expression = :schedule_expression, timezone = :timezone,
    max_concurrent_executions = :max_concurrent_executions, timeout_seconds = :timeout_seconds,
    retry_attempts = :retry_attempts, retry_delay_seconds = :retry_delay_seconds,
    is_paused = :is_paused
WHERE id = :id
RETURNING id, name, description, environment_variables, schedule_expression, timezone,
          max_concurrent_executions, timeout_seconds, retry_attempts, retry_delay_seconds,
          is_paused, created_at, updated_at;

-- name: set_pipeline_paused(id, is_paused)<!
-- Pause or resume a pipeline's schedule; None when there is no such pipeline.
UPDATE pipelines SET is_paused = :is_paused
WHERE id = :id
RETURNING id, name, description, environment_variables, schedule_expression, timezone,
          max_concurrent_executions, timeout_seconds, retry_attempts, retry_delay_seconds,
          is_paused, created_at, updated_at;

-- name: delete_pipeline(id)<!
-- Remove a pipeline with its steps and executions; None when there is no such pipeline.
--
-- Its configuration versions stay (they have no foreign key), for the audit.
DELETE FROM pipelines
WHERE id = :id
RETURNING id, name, description, environment_variables, schedule_expression, timezone,
          max_concurrent_executions, timeout_seconds, retry_attempts, retry_delay_seconds,
          is_paused, created_at, updated_at;

-- name: get_pipeline_step(id)^
-- A pipeline step by id.
SELECT id, pipeline_id, position, plugin_id, configuration, created_at, updated_at
FROM pipeline_steps
WHERE id = :id;

-- name: list_pipeline_steps(pipeline_id)
-- @vet allow unbounded: a pipeline has tens of steps
-- A pipeline's steps in position order (lazy loading; pipelines have few steps, so no paging).
SELECT id, pipeline_id, position, plugin_id, configuration, created_at, updated_at
FROM pipeline_steps
WHERE pipeline_id = :pipeline_id
ORDER BY position;

-- name: list_pipeline_steps_by_plugin(plugin_id, after_id, limit)
-- A page of the steps that run a plugin, in step id order; after_id None for the first page.
-- @nullable after_id
SELECT s.id, s.pipeline_id, p.name AS pipeline_name, s.position
FROM pipeline_steps AS s
JOIN pipelines AS p ON p.id = s.pipeline_id
WHERE s.plugin_id = :plugin_id
  AND s.id > coalesce(:after_id::uuid, '00000000-0000-0000-0000-000000000000')
ORDER BY s.id
LIMIT :limit;

-- name: create_pipeline_step(pipeline_id, position, plugin_id, configuration)<!
-- Add a step to a pipeline.
--
-- A position used in the pipeline already is a Conflict; an unknown pipeline or plugin an
-- InvalidReference.
INSERT INTO pipeline_steps (pipeline_id, position, plugin_id, configuration)
VALUES (:pipeline_id, :position, :plugin_id, :configuration)
RETURNING id, pipeline_id, position, plugin_id, configuration, created_at, updated_at;

-- name: upsert_pipeline_steps*!
-- Write a pipeline's steps by position: a new position is inserted, an existing one replaced.
--
-- Steps keep their ids while their position stays, so past step executions stay linked. Follow
-- with delete_pipeline_steps_after to drop the positions the new list no longer has.
INSERT INTO pipeline_steps (pipeline_id, position, plugin_id, configuration)
VALUES (:pipeline_id, :position, :plugin_id, :configuration)
ON CONFLICT (pipeline_id, position)
DO UPDATE SET plugin_id = excluded.plugin_id, configuration = excluded.configuration;

-- name: delete_pipeline_steps_after(pipeline_id, last_position)!
-- Remove a pipeline's steps after last_position (-1 removes all); returns how many.
DELETE FROM pipeline_steps WHERE pipeline_id = :pipeline_id AND position > :last_position;

-- name: update_pipeline_step(id, position, plugin_id, configuration)<!
-- Move or reconfigure a step; None when there is no such step, a position clash is a Conflict.
UPDATE pipeline_steps
SET position = :position, plugin_id = :plugin_id, configuration = :configuration
WHERE id = :id
RETURNING id, pipeline_id, position, plugin_id, configuration, created_at, updated_at;

-- name: delete_pipeline_step(id)<!
-- Remove one step; None when there is no such step.
DELETE FROM pipeline_steps
WHERE id = :id
RETURNING id, pipeline_id, position, plugin_id, configuration, created_at, updated_at;
