-- Events: ingested in bursts, processed by concurrent consumers. A consumer claims a batch of
-- pending events (status processing, FOR UPDATE SKIP LOCKED), then marks each done with its
-- task_context or failed with an error. Claims of consumers that died are reclaimed.

-- name: copy_events()!
-- Bulk-ingest events with COPY (thousands per call): rows in, count out.
--
-- One duplicate idempotency_key fails the whole batch with a Conflict; use ingest_event for
-- keyed events.
COPY events (event_type, data, idempotency_key) FROM STDIN;

-- name: ingest_event(event_type, data, idempotency_key)<!
-- Ingest one event; None when an event with the same idempotency_key exists already.
-- @nullable idempotency_key
WITH new_event AS MATERIALIZED (SELECT gen_random_uuid() AS id, now() AS created_at),
-- The key first (events is partitioned, so no UNIQUE constraint of its own can span all events):
-- a key taken already, or by a transaction that goes on to commit, inserts nothing here and so
-- no event below.
claimed_key AS (
    INSERT INTO event_idempotency_keys (idempotency_key, event_id, created_at)
    SELECT CAST(:idempotency_key AS text), n.id, n.created_at
    FROM new_event AS n
    WHERE :idempotency_key IS NOT NULL
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING event_id
)
INSERT INTO events (id, event_type, data, idempotency_key, created_at)
SELECT n.id, CAST(:event_type AS text), CAST(:data AS jsonb), :idempotency_key, n.created_at
FROM new_event AS n
WHERE :idempotency_key IS NULL OR EXISTS (SELECT FROM claimed_key)
RETURNING id, event_type, data, task_context, status, idempotency_key, attempts, claimed_by,
          claimed_at, error, created_at, updated_at, processed_at;

-- name: get_event(id)^
-- An event by id.
SELECT id, event_type, data, task_context, status, idempotency_key, attempts, claimed_by,
       claimed_at, error, created_at, updated_at, processed_at
FROM events
WHERE id = :id;

-- name: get_event_by_idempotency_key(idempotency_key)^
-- The event a producer sent with an idempotency key.
SELECT e.id, e.event_type, e.data, e.task_context, e.status, e.idempotency_key, e.attempts,
       e.claimed_by, e.claimed_at, e.error, e.created_at, e.updated_at, e.processed_at
FROM event_idempotency_keys AS k
-- The whole key: only the event's own partition is read.
JOIN events AS e ON e.id = k.event_id AND e.created_at = k.created_at
WHERE k.idempotency_key = :idempotency_key;

-- name: list_events(before_created_at, before_id, limit)
-- A page of all events, newest first; both cursors None for the first page.
-- @nullable before_created_at
-- @nullable before_id
SELECT id, event_type, data, task_context, status, idempotency_key, attempts, claimed_by,
       claimed_at, error, created_at, updated_at, processed_at
FROM events
WHERE (created_at, id) < (coalesce(:before_created_at::timestamptz, 'infinity'),
                          coalesce(:before_id::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: list_events_by_type(event_type, since, until, limit)
-- The events of one type created in [since, until), oldest first, at most `limit`.
SELECT id, event_type, data, task_context, status, idempotency_key, attempts, claimed_by,
       claimed_at, error, created_at, updated_at, processed_at
FROM events
WHERE event_type = :event_type AND created_at >= :since AND created_at < :until
ORDER BY created_at
LIMIT :limit;

-- name: count_pending_events()$
-- How many events wait for a consumer (the backlog).
SELECT count(*) FROM events WHERE status = 'pending';

-- name: claim_events(consumer_id, limit)
-- Take up to `limit` pending events for consumer_id, oldest first (FOR UPDATE SKIP LOCKED).
--
-- They become processing, and their attempts count goes up.
UPDATE events AS e
SET status = 'processing', claimed_by = :consumer_id, claimed_at = now(),
    attempts = e.attempts + 1
FROM (
    SELECT q.id, q.created_at
    FROM events AS q
    WHERE q.status = 'pending'
    ORDER BY q.created_at, q.id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
) AS chosen
-- The whole key: each row is looked up in its own partition only.
WHERE e.id = chosen.id AND e.created_at = chosen.created_at
RETURNING e.id, e.event_type, e.data, e.task_context, e.status, e.idempotency_key, e.attempts,
          e.claimed_by, e.claimed_at, e.error, e.created_at, e.updated_at, e.processed_at;

-- name: mark_event_done(id, consumer_id, task_context)<!
-- Store the results of processing an event and mark it done.
--
-- None when consumer_id no longer holds it (its claim went stale and was reclaimed).
UPDATE events
SET status = 'done', task_context = :task_context, processed_at = now(), error = NULL
WHERE id = :id AND status = 'processing' AND claimed_by = :consumer_id
RETURNING id, event_type, data, task_context, status, idempotency_key, attempts, claimed_by,
          claimed_at, error, created_at, updated_at, processed_at;

-- name: mark_event_failed(id, consumer_id, error)<!
-- Mark an event failed with the reason; None when consumer_id no longer holds it.
UPDATE events
SET status = 'failed', error = :error, processed_at = now()
WHERE id = :id AND status = 'processing' AND claimed_by = :consumer_id
RETURNING id, event_type, data, task_context, status, idempotency_key, attempts, claimed_by,
          claimed_at, error, created_at, updated_at, processed_at;

-- name: reclaim_stale_events(claimed_before, max_attempts)!
-- Give events whose consumer died (claimed before claimed_before) back to the queue.
--
-- Those claimed max_attempts times already are marked failed instead. Returns how many changed.
UPDATE events
SET status = CASE WHEN attempts >= :max_attempts THEN 'failed' ELSE 'pending' END::event_status,
    claimed_by = NULL,
    claimed_at = NULL,
    error = CASE WHEN attempts >= :max_attempts THEN 'abandoned: claim went stale too often' END,
    processed_at = CASE WHEN attempts >= :max_attempts THEN now() END
WHERE status = 'processing' AND claimed_at < :claimed_before;

-- name: delete_event(id)<!
-- Remove an event; None when there is no such event.
DELETE FROM events
WHERE id = :id
RETURNING id, event_type, data, task_context, status, idempotency_key, attempts, claimed_by,
          claimed_at, error, created_at, updated_at, processed_at;
