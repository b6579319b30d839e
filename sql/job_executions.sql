-- Job executions: a work queue like pipeline_executions, without a concurrency limit per job.
-- A failed execution is retried as a NEW row with attempt + 1, up to jobs.num_of_retries retries.

-- name: enqueue_job_execution(job_id, triggered_by, triggered_by_user_id, idempotency_key, context)<!
-- Queue a run of a job; None when its idempotency_key was used for this job already.
--
-- Then get_job_execution_by_idempotency_key returns the first one. An unknown job is an
-- InvalidReference.
-- @nullable triggered_by_user_id
-- @nullable idempotency_key
INSERT INTO job_executions (job_id, triggered_by, triggered_by_user_id, idempotency_key, context)
VALUES (:job_id, :triggered_by, :triggered_by_user_id, :idempotency_key, :context)
ON CONFLICT (job_id, idempotency_key) DO NOTHING
RETURNING id, job_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
          queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at,
          rows_processed, error, context, updated_at;

-- name: get_job_execution(id)^
-- A job execution by id.
SELECT id, job_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
       queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at, rows_processed,
       error, context, updated_at
FROM job_executions
WHERE id = :id;

-- name: get_job_execution_by_idempotency_key(job_id, idempotency_key)^
-- The execution queued for a job with a client's idempotency key.
SELECT id, job_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
       queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at, rows_processed,
       error, context, updated_at
FROM job_executions
WHERE job_id = :job_id AND idempotency_key = :idempotency_key;

-- name: claim_job_executions(worker_id, limit)
-- Mark up to `limit` queued job executions running for worker_id, oldest first.
--
-- Rows another worker is claiming are skipped (FOR UPDATE SKIP LOCKED).
UPDATE job_executions AS e
SET status = 'running', claimed_by = :worker_id, claimed_at = now(), heartbeat_at = now(),
    started_at = now()
FROM (
    SELECT q.id
    FROM job_executions AS q
    WHERE q.status = 'queued' AND q.queued_at <= now()
    ORDER BY q.queued_at, q.id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
) AS chosen
WHERE e.id = chosen.id
RETURNING e.id, e.job_id, e.status, e.attempt, e.triggered_by, e.triggered_by_user_id,
          e.idempotency_key, e.queued_at, e.claimed_by, e.claimed_at, e.heartbeat_at,
          e.started_at, e.finished_at, e.rows_processed, e.error, e.context, e.updated_at;

-- name: record_job_execution_heartbeat(id, worker_id, rows_processed)!
-- Record a running job execution's sign of life and progress.
--
-- Returns 0 when worker_id no longer holds it: the worker should stop.
UPDATE job_executions
SET heartbeat_at = now(), rows_processed = :rows_processed
WHERE id = :id AND status = 'running' AND claimed_by = :worker_id;

-- name: mark_job_execution_succeeded(id, worker_id, rows_processed)<!
-- Finish a running job execution successfully; None when worker_id no longer holds it.
UPDATE job_executions
SET status = 'succeeded', finished_at = now(), heartbeat_at = now(),
    rows_processed = :rows_processed
WHERE id = :id AND status = 'running' AND claimed_by = :worker_id
RETURNING id, job_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
          queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at,
          rows_processed, error, context, updated_at;

-- name: mark_job_execution_failed(id, worker_id, error)<!
-- Finish a running job execution with an error; None when worker_id no longer holds it.
UPDATE job_executions
SET status = 'failed', finished_at = now(), heartbeat_at = now(), error = :error
WHERE id = :id AND status = 'running' AND claimed_by = :worker_id
RETURNING id, job_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
          queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at,
          rows_processed, error, context, updated_at;

-- name: cancel_job_execution(id)<!
-- Cancel a queued or running job execution; None when there is none in either state.
UPDATE job_executions
SET status = 'cancelled', finished_at = now()
WHERE id = :id AND status IN ('queued', 'running')
RETURNING id, job_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
          queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at,
          rows_processed, error, context, updated_at;

-- name: requeue_failed_job_execution(id)<!
-- Queue the next attempt of a failed job execution (a new row, attempt + 1).
--
-- None when it is not failed, the job's num_of_retries are used up, or it was requeued already
-- (the retry's idempotency key is 'retry:<id>').
INSERT INTO job_executions (
    job_id, attempt, triggered_by, triggered_by_user_id, idempotency_key, context
)
SELECT e.job_id, e.attempt + 1, e.triggered_by, e.triggered_by_user_id, 'retry:' || e.id,
       e.context
FROM job_executions AS e
JOIN jobs AS j ON j.id = e.job_id
WHERE e.id = :id AND e.status = 'failed' AND e.attempt <= j.num_of_retries
ON CONFLICT (job_id, idempotency_key) DO NOTHING
RETURNING id, job_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
          queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at,
          rows_processed, error, context, updated_at;

-- name: fail_stale_job_executions(heartbeat_before)
-- @vet allow unbounded: only claims whose worker stopped sending heartbeats: at most the worker slots
-- Fail the running job executions with no heartbeat since heartbeat_before.
--
-- Their worker died; they are returned so that the caller can requeue each.
UPDATE job_executions
SET status = 'failed', finished_at = now(), error = 'worker lost: no heartbeat'
WHERE status = 'running' AND heartbeat_at < :heartbeat_before
RETURNING id, job_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
          queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at,
          rows_processed, error, context, updated_at;

-- name: list_job_executions(job_id, before_queued_at, before_id, limit)
-- A page of a job's executions, newest first (the last N: both cursors None).
-- @nullable before_queued_at
-- @nullable before_id
SELECT id, job_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
       queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at, rows_processed,
       error, context, updated_at
FROM job_executions
WHERE job_id = :job_id
  AND (queued_at, id) < (coalesce(:before_queued_at::timestamptz, 'infinity'),
                         coalesce(:before_id::bigint, 9223372036854775807))
ORDER BY queued_at DESC, id DESC
LIMIT :limit;

-- name: list_running_job_executions(limit)
-- The job executions running now, longest-running first.
SELECT id, job_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
       queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at, rows_processed,
       error, context, updated_at
FROM job_executions
WHERE status = 'running'
ORDER BY started_at, id
LIMIT :limit;

-- name: count_job_executions_by_status(since, until)
-- @vet allow unbounded: one row per status: five at most
-- How many job executions were queued in [since, until), per status.
SELECT status, count(*) AS count
FROM job_executions
WHERE queued_at >= :since AND queued_at < :until
GROUP BY status
ORDER BY status;

-- name: list_job_failure_rates(since)
-- @vet allow unbounded: one row per job that finished a run in the last day: bounded by the job catalog
-- Per job, the executions finished since `since` and the fraction that failed.
--
-- Counts succeeded and failed ones (not cancelled); worst first. Jobs with none are absent.
SELECT e.job_id,
       j.name,
       count(*) AS finished,
       count(*) FILTER (WHERE e.status = 'failed') AS failed,
       (count(*) FILTER (WHERE e.status = 'failed'))::double precision / count(*)
           AS "failure_rate!"
FROM job_executions AS e
JOIN jobs AS j ON j.id = e.job_id
WHERE e.finished_at >= :since AND e.status IN ('succeeded', 'failed')
GROUP BY e.job_id, j.name
ORDER BY 5 DESC, j.name;

-- name: delete_job_execution(id)<!
-- Remove a job execution with its metrics; None when there is no such execution.
DELETE FROM job_executions
WHERE id = :id
RETURNING id, job_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
          queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at,
          rows_processed, error, context, updated_at;
