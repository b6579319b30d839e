-- Pipeline executions: a work queue. Queued rows are claimed by workers (status running), then
-- marked succeeded or failed; a failed one is retried as a NEW row with attempt + 1 (each row is
-- one attempt, so the history of every attempt stays), up to pipelines.retry_attempts retries.
-- queued_at doubles as "not before": a retry is queued retry_delay_seconds in the future and is
-- not claimed earlier.

-- name: enqueue_pipeline_execution(pipeline_id, triggered_by, triggered_by_user_id, idempotency_key, context)<!
-- Queue a run of a pipeline; None when its idempotency_key was used already.
--
-- Then get_pipeline_execution_by_idempotency_key returns the first one. An unknown pipeline is
-- an InvalidReference.
-- @nullable triggered_by_user_id
-- @nullable idempotency_key
WITH new_execution AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('pipeline_executions', 'id')) AS id, now() AS queued_at
),
-- The key first (pipeline_executions is partitioned, so no UNIQUE constraint of its own can span
-- all executions): a key taken already, or by a transaction that goes on to commit, inserts
-- nothing here and so no execution below.
claimed_key AS (
    INSERT INTO pipeline_execution_idempotency_keys (
        pipeline_id, idempotency_key, pipeline_execution_id, queued_at
    )
    SELECT CAST(:pipeline_id AS uuid), CAST(:idempotency_key AS text), n.id, n.queued_at
    FROM new_execution AS n
    WHERE :idempotency_key IS NOT NULL
    ON CONFLICT (pipeline_id, idempotency_key) DO NOTHING
    RETURNING pipeline_execution_id
)
INSERT INTO pipeline_executions (
    id, pipeline_id, triggered_by, triggered_by_user_id, idempotency_key, queued_at, context
)
OVERRIDING SYSTEM VALUE
SELECT n.id, :pipeline_id, CAST(:triggered_by AS trigger_kind), CAST(:triggered_by_user_id AS uuid),
       :idempotency_key, n.queued_at, CAST(:context AS jsonb)
FROM new_execution AS n
WHERE :idempotency_key IS NULL OR EXISTS (SELECT FROM claimed_key)
RETURNING id, pipeline_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
          queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at,
          rows_processed, error, context, updated_at;

-- name: copy_pipeline_executions()!
-- Bulk-insert executions with COPY (thousands per call): rows in, count out.
--
-- For loading run history (finished runs) or queueing many runs at once; the other columns take
-- their defaults (attempt 1, no idempotency key, empty context). One row breaking a constraint
-- (an unknown pipeline is an InvalidReference; finished_at must be set exactly when the status is
-- final) fails the whole batch.
COPY pipeline_executions (
    pipeline_id, status, triggered_by, queued_at, started_at, finished_at, rows_processed, error
) FROM STDIN;

-- name: get_pipeline_execution(id)^
-- A pipeline execution by id.
SELECT id, pipeline_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
       queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at, rows_processed,
       error, context, updated_at
FROM pipeline_executions
WHERE id = :id;

-- name: get_pipeline_execution_by_idempotency_key(pipeline_id, idempotency_key)^
-- The execution queued for a pipeline with a client's idempotency key.
SELECT e.id, e.pipeline_id, e.status, e.attempt, e.triggered_by, e.triggered_by_user_id,
       e.idempotency_key, e.queued_at, e.claimed_by, e.claimed_at, e.heartbeat_at, e.started_at,
       e.finished_at, e.rows_processed, e.error, e.context, e.updated_at
FROM pipeline_execution_idempotency_keys AS k
-- The whole key: only the execution's own partition is read.
JOIN pipeline_executions AS e ON e.id = k.pipeline_execution_id AND e.queued_at = k.queued_at
WHERE k.pipeline_id = :pipeline_id AND k.idempotency_key = :idempotency_key;

-- name: lock_pipelines_with_queued_executions(limit)
-- @vet allow seqscan: vet plans on empty partitions, where hashing all pipelines looks cheapest; with rows the plan walks the queued partial indexes in order (Merge Append) and probes pipelines_pkey per execution (docs/scaling.md)
-- Step 1 of claiming: lock pipelines with claimable executions and free capacity.
--
-- Up to `limit` pipelines, oldest waiting first, skipping those another worker is claiming for.
-- Run claim_pipeline_executions with the returned ids next, in the SAME transaction: holding
-- these locks serialises claimers per pipeline, and the next statement's fresh snapshot sees
-- every earlier claimer's running rows, so max_concurrent_executions holds.
--
-- The plan walks the few queued executions oldest first (pipeline_executions_queued_idx) and
-- stops at `limit` locked pipelines: it touches only pipelines with queued work, never all of
-- them. Each pipeline is seen once, at its oldest claimable execution; a backlog queued ahead
-- on pipelines at capacity is walked past, one index probe per execution.
SELECT p.id
FROM pipeline_executions AS e
JOIN pipelines AS p ON p.id = e.pipeline_id
WHERE e.status = 'queued' AND e.queued_at <= now()
  -- Only the pipeline's oldest queued execution (pipeline_executions_pipeline_id_queued_idx).
  AND NOT EXISTS (
      SELECT 1 FROM pipeline_executions AS older
      WHERE older.pipeline_id = e.pipeline_id AND older.status = 'queued'
        AND (older.queued_at, older.id) < (e.queued_at, e.id)
  )
  -- Free capacity, from the partial index of running executions.
  AND p.max_concurrent_executions > (
      SELECT count(*) FROM pipeline_executions AS r
      WHERE r.pipeline_id = e.pipeline_id AND r.status = 'running'
  )
ORDER BY e.queued_at, e.id
-- (SELECT ...) hides the value from the planner, so every call has the same estimated cost and
-- the server keeps one generic plan after five calls instead of planning every call (half the
-- claim's time). The plan suits any limit: it streams in order and stops there.
LIMIT (SELECT CAST(:limit AS int))
FOR NO KEY UPDATE OF p SKIP LOCKED;

-- name: claim_pipeline_executions(pipeline_ids, worker_id, limit)
-- Step 2 of claiming: mark queued executions of the locked pipelines running.
--
-- Up to `limit` for worker_id, oldest first, never more per pipeline than its free capacity
-- (max_concurrent_executions minus those running). Rows locked by anyone else are skipped.
WITH capacity AS (
    SELECT p.id AS pipeline_id,
           p.max_concurrent_executions - (
               SELECT count(*) FROM pipeline_executions AS r
               WHERE r.pipeline_id = p.id AND r.status = 'running'
           ) AS free
    FROM pipelines AS p
    -- (SELECT ...) as in lock_pipelines_with_queued_executions: one generic plan, not one per call.
    WHERE p.id = ANY((SELECT CAST(:pipeline_ids AS uuid[]))::uuid[])
),
chosen AS (
    SELECT q.id, q.queued_at
    FROM capacity AS c
    CROSS JOIN LATERAL (
        SELECT e.id, e.queued_at
        FROM pipeline_executions AS e
        WHERE e.pipeline_id = c.pipeline_id AND e.status = 'queued' AND e.queued_at <= now()
        ORDER BY e.queued_at, e.id
        LIMIT greatest(c.free, 0)
        FOR UPDATE SKIP LOCKED
    ) AS q
    ORDER BY q.queued_at, q.id
    LIMIT (SELECT CAST(:limit AS int))
)
UPDATE pipeline_executions AS e
SET status = 'running', claimed_by = :worker_id, claimed_at = now(), heartbeat_at = now(),
    started_at = now()
FROM chosen
-- The whole key: each row is looked up in its own partition only.
WHERE e.id = chosen.id AND e.queued_at = chosen.queued_at
RETURNING e.id, e.pipeline_id, e.status, e.attempt, e.triggered_by, e.triggered_by_user_id,
          e.idempotency_key, e.queued_at, e.claimed_by, e.claimed_at, e.heartbeat_at,
          e.started_at, e.finished_at, e.rows_processed, e.error, e.context, e.updated_at;

-- name: record_pipeline_execution_heartbeat(id, worker_id, rows_processed)!
-- Record a running execution's sign of life and progress.
--
-- Returns 0 when worker_id no longer holds it (it was cancelled, or failed as stale): the worker
-- should stop.
UPDATE pipeline_executions
SET heartbeat_at = now(), rows_processed = :rows_processed
WHERE id = :id AND status = 'running' AND claimed_by = :worker_id;

-- name: mark_pipeline_execution_succeeded(id, worker_id, rows_processed)<!
-- Finish a running execution successfully; None when worker_id no longer holds it.
UPDATE pipeline_executions
SET status = 'succeeded', finished_at = now(), heartbeat_at = now(),
    rows_processed = :rows_processed
WHERE id = :id AND status = 'running' AND claimed_by = :worker_id
RETURNING id, pipeline_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
          queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at,
          rows_processed, error, context, updated_at;

-- name: mark_pipeline_execution_failed(id, worker_id, error)<!
-- Finish a running execution with an error; None when worker_id no longer holds it.
--
-- Follow with requeue_failed_pipeline_execution to retry it.
UPDATE pipeline_executions
SET status = 'failed', finished_at = now(), heartbeat_at = now(), error = :error
WHERE id = :id AND status = 'running' AND claimed_by = :worker_id
RETURNING id, pipeline_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
          queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at,
          rows_processed, error, context, updated_at;

-- name: cancel_pipeline_execution(id)<!
-- Cancel a queued or running execution; None when there is none in either state.
--
-- A worker running it learns at its next heartbeat.
UPDATE pipeline_executions
SET status = 'cancelled', finished_at = now()
WHERE id = :id AND status IN ('queued', 'running')
RETURNING id, pipeline_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
          queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at,
          rows_processed, error, context, updated_at;

-- name: requeue_failed_pipeline_execution(id)<!
-- Queue the next attempt of a failed execution (a new row, attempt + 1).
--
-- It is claimable after the pipeline's retry_delay_seconds. None when it is not failed, its
-- pipeline's retry_attempts are used up, or it was requeued already (the retry's idempotency key
-- is 'retry:<id>').
WITH retry AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('pipeline_executions', 'id')) AS id,
           e.pipeline_id, e.attempt + 1 AS attempt, e.triggered_by, e.triggered_by_user_id,
           'retry:' || e.id AS idempotency_key,
           now() + make_interval(secs => p.retry_delay_seconds) AS queued_at, e.context
    FROM pipeline_executions AS e
    JOIN pipelines AS p ON p.id = e.pipeline_id
    WHERE e.id = :id AND e.status = 'failed' AND e.attempt <= p.retry_attempts
),
-- As in enqueue_pipeline_execution: the key first, and no retry when it is taken.
claimed_key AS (
    INSERT INTO pipeline_execution_idempotency_keys (
        pipeline_id, idempotency_key, pipeline_execution_id, queued_at
    )
    SELECT r.pipeline_id, r.idempotency_key, r.id, r.queued_at
    FROM retry AS r
    ON CONFLICT (pipeline_id, idempotency_key) DO NOTHING
    RETURNING pipeline_execution_id
)
INSERT INTO pipeline_executions (
    id, pipeline_id, attempt, triggered_by, triggered_by_user_id, idempotency_key, queued_at,
    context
)
OVERRIDING SYSTEM VALUE
SELECT r.id, r.pipeline_id, r.attempt, r.triggered_by, r.triggered_by_user_id, r.idempotency_key,
       r.queued_at, r.context
FROM retry AS r
WHERE EXISTS (SELECT FROM claimed_key)
RETURNING id, pipeline_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
          queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at,
          rows_processed, error, context, updated_at;

-- name: fail_stale_pipeline_executions(heartbeat_before)
-- @vet allow unbounded: only claims whose worker stopped sending heartbeats: at most the worker slots
-- Fail the running executions with no heartbeat since heartbeat_before.
--
-- Their worker died; they are returned so that the caller can requeue each.
UPDATE pipeline_executions
SET status = 'failed', finished_at = now(), error = 'worker lost: no heartbeat'
WHERE status = 'running' AND heartbeat_at < :heartbeat_before
RETURNING id, pipeline_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
          queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at,
          rows_processed, error, context, updated_at;

-- name: list_pipeline_executions(pipeline_id, before_queued_at, before_id, limit)
-- A page of a pipeline's executions, newest first (the last N: both cursors None).
-- @nullable before_queued_at
-- @nullable before_id
SELECT id, pipeline_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
       queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at, rows_processed,
       error, context, updated_at
FROM pipeline_executions
WHERE pipeline_id = :pipeline_id
  AND (queued_at, id) < (coalesce(:before_queued_at::timestamptz, 'infinity'),
                         coalesce(:before_id::bigint, 9223372036854775807))
ORDER BY queued_at DESC, id DESC
LIMIT :limit;

-- name: list_running_pipeline_executions(limit)
-- The executions running now, longest-running first.
SELECT id, pipeline_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
       queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at, rows_processed,
       error, context, updated_at
FROM pipeline_executions
WHERE status = 'running'
ORDER BY started_at, id
LIMIT :limit;

-- name: count_running_pipeline_executions(pipeline_id)$
-- How many executions of a pipeline are running now.
SELECT count(*) FROM pipeline_executions WHERE pipeline_id = :pipeline_id AND status = 'running';

-- name: count_pipeline_executions_by_status(since, until)
-- @vet allow unbounded: one row per status: five at most
-- How many executions were queued in [since, until), per status (statuses with none are absent).
SELECT status, count(*) AS count
FROM pipeline_executions
WHERE queued_at >= :since AND queued_at < :until
GROUP BY status
ORDER BY status;

-- name: list_pipeline_failure_rates(since)
-- @vet allow unbounded: one row per pipeline that finished a run in the last day: bounded by the pipeline catalog
-- Per pipeline, the executions finished since `since` and the fraction that failed.
--
-- Counts succeeded and failed ones (not cancelled); worst first. Pipelines with none are absent.
-- For the last day, pass since = now - 1 day.
SELECT e.pipeline_id,
       p.name,
       count(*) AS finished,
       count(*) FILTER (WHERE e.status = 'failed') AS failed,
       (count(*) FILTER (WHERE e.status = 'failed'))::double precision / count(*)
           AS "failure_rate!"
FROM pipeline_executions AS e
JOIN pipelines AS p ON p.id = e.pipeline_id
WHERE e.finished_at >= :since AND e.status IN ('succeeded', 'failed')
GROUP BY e.pipeline_id, p.name
ORDER BY 5 DESC, p.name;

-- name: delete_pipeline_execution(id)<!
-- Remove an execution with its step executions; None when there is no such execution.
DELETE FROM pipeline_executions
WHERE id = :id
RETURNING id, pipeline_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
          queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at,
          rows_processed, error, context, updated_at;
