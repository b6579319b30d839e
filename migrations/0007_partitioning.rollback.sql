-- squawk-ignore-file ban-drop-table, ban-drop-column, ban-drop-function, ban-drop-constraint, renaming-table, renaming-object, require-concurrent-index-creation, require-concurrent-index-deletion, adding-foreign-key-constraint, constraint-missing-not-valid
-- Undo 0007: the three tables unpartitioned again, exactly as 0004 and 0006 made them, with their
-- rows; the idempotency keys back in UNIQUE constraints; step_executions' single-column key.
-- Partitions that maintenance detached (retention_action detach) are tables of their own and
-- stay. Like 0007, this rewrites the tables: run it in a maintenance window.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '30min';

-- Free the names for the unpartitioned tables; the key tables hold the UNIQUE constraints' names.
DROP TABLE pipeline_execution_idempotency_keys, event_idempotency_keys;
DROP FUNCTION claim_pipeline_execution_idempotency_key() CASCADE;
DROP FUNCTION claim_event_idempotency_key() CASCADE;
ALTER TABLE pipeline_executions RENAME TO pipeline_executions_partitioned;
ALTER SEQUENCE pipeline_executions_id_seq RENAME TO pipeline_executions_partitioned_id_seq;
ALTER TABLE pipeline_executions_partitioned
    RENAME CONSTRAINT pipeline_executions_pkey TO pipeline_executions_partitioned_pkey;
DROP INDEX pipeline_executions_pipeline_id_queued_at_idx, pipeline_executions_queued_idx,
    pipeline_executions_pipeline_id_queued_idx, pipeline_executions_running_idx,
    pipeline_executions_running_started_at_idx, pipeline_executions_queued_at_status_idx,
    pipeline_executions_finished_at_idx, pipeline_executions_triggered_by_user_id_idx;
ALTER TABLE component_metrics RENAME TO component_metrics_partitioned;
ALTER SEQUENCE component_metrics_id_seq RENAME TO component_metrics_partitioned_id_seq;
ALTER TABLE component_metrics_partitioned
    RENAME CONSTRAINT component_metrics_pkey TO component_metrics_partitioned_pkey;
DROP INDEX component_metrics_component_id_metric_name_recorded_at_idx,
    component_metrics_job_execution_id_idx;
ALTER TABLE events RENAME TO events_partitioned;
ALTER TABLE events_partitioned RENAME CONSTRAINT events_pkey TO events_partitioned_pkey;
DROP INDEX events_pending_idx, events_processing_idx, events_event_type_created_at_idx,
    events_created_at_id_idx;

-- As 0004 created them.
CREATE TABLE pipeline_executions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Executions are the history of their pipeline and go with it; audit_log keeps the deletion.
    pipeline_id uuid NOT NULL
        CONSTRAINT pipeline_executions_pipeline_id_fkey
        REFERENCES pipelines (id) ON DELETE CASCADE,
    status execution_status NOT NULL DEFAULT 'queued',
    attempt integer NOT NULL DEFAULT 1 CONSTRAINT pipeline_executions_attempt_check CHECK (attempt >= 1),
    triggered_by trigger_kind NOT NULL,
    -- The run history outlives the account that started it.
    triggered_by_user_id uuid
        CONSTRAINT pipeline_executions_triggered_by_user_id_fkey
        REFERENCES users (id) ON DELETE SET NULL,
    idempotency_key text,
    queued_at timestamptz NOT NULL DEFAULT now(),
    claimed_by text,
    claimed_at timestamptz,
    heartbeat_at timestamptz,
    started_at timestamptz,
    finished_at timestamptz,
    rows_processed bigint NOT NULL DEFAULT 0
        CONSTRAINT pipeline_executions_rows_processed_check CHECK (rows_processed >= 0),
    error text,
    context jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pipeline_executions_finished_after_started_check CHECK (finished_at >= started_at),
    CONSTRAINT pipeline_executions_running_started_check
        CHECK (status <> 'running' OR started_at IS NOT NULL),
    CONSTRAINT pipeline_executions_finished_when_final_check
        CHECK ((status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    -- NULL keys are distinct, so executions queued without a key are unaffected. Plain (not
    -- partial) so that INSERT ... ON CONFLICT (pipeline_id, idempotency_key) can name it.
    CONSTRAINT pipeline_executions_idempotency_key_key UNIQUE (pipeline_id, idempotency_key)
);
COMMENT ON TABLE pipeline_executions IS 'One run (one attempt) of a pipeline, from queued to finished.';
COMMENT ON COLUMN pipeline_executions.attempt IS '1 for the first run; a retry of a failed run is queued with attempt + 1, up to pipelines.retry_attempts + 1.';
COMMENT ON COLUMN pipeline_executions.triggered_by IS 'Whether a user, the scheduler or an API client queued it.';
COMMENT ON COLUMN pipeline_executions.triggered_by_user_id IS 'The user who queued it, when triggered_by is user.';
COMMENT ON COLUMN pipeline_executions.idempotency_key IS 'Client-chosen key: queueing the same key for the same pipeline again returns the first execution.';
COMMENT ON COLUMN pipeline_executions.claimed_by IS 'Id of the worker that claimed the execution (FOR UPDATE SKIP LOCKED); NULL while queued.';
COMMENT ON COLUMN pipeline_executions.claimed_at IS 'When the worker claimed it.';
COMMENT ON COLUMN pipeline_executions.heartbeat_at IS 'Last sign of life from the claiming worker; a stale heartbeat means the worker died.';
COMMENT ON COLUMN pipeline_executions.rows_processed IS 'Rows the execution has moved so far.';
COMMENT ON COLUMN pipeline_executions.error IS 'Why it failed; NULL unless failed.';
COMMENT ON COLUMN pipeline_executions.context IS 'Run-time parameters and state of the execution, as a JSON object.';
-- The last N executions of a pipeline (and the pipeline_id foreign key).
CREATE INDEX pipeline_executions_pipeline_id_queued_at_idx
    ON pipeline_executions (pipeline_id, queued_at DESC, id DESC);
-- Claiming: the oldest queued executions first; small, since queued rows are few at any time.
CREATE INDEX pipeline_executions_queued_idx
    ON pipeline_executions (queued_at, id) WHERE status = 'queued';
-- Claiming per pipeline: the oldest queued executions of each pipeline whose lock was taken.
CREATE INDEX pipeline_executions_pipeline_id_queued_idx
    ON pipeline_executions (pipeline_id, queued_at, id) WHERE status = 'queued';
-- The currently running executions, overall and per pipeline (max_concurrent_executions).
CREATE INDEX pipeline_executions_running_idx
    ON pipeline_executions (pipeline_id, started_at) WHERE status = 'running';
-- The running executions overall, oldest first (list_running_pipeline_executions).
CREATE INDEX pipeline_executions_running_started_at_idx
    ON pipeline_executions (started_at, id) WHERE status = 'running';
-- Counts by status over a time window; also the retention scan by age.
CREATE INDEX pipeline_executions_queued_at_status_idx ON pipeline_executions (queued_at, status);
-- Failure rate per pipeline over the last day: finished executions by time.
CREATE INDEX pipeline_executions_finished_at_idx
    ON pipeline_executions (finished_at) INCLUDE (pipeline_id, status)
    WHERE finished_at IS NOT NULL;
CREATE INDEX pipeline_executions_triggered_by_user_id_idx
    ON pipeline_executions (triggered_by_user_id);
CREATE TRIGGER pipeline_executions_set_updated_at BEFORE UPDATE ON pipeline_executions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE component_metrics (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Metrics describe their component and its runs; they go with either.
    component_id uuid NOT NULL
        CONSTRAINT component_metrics_component_id_fkey
        REFERENCES components (id) ON DELETE CASCADE,
    job_execution_id bigint
        CONSTRAINT component_metrics_job_execution_id_fkey
        REFERENCES job_executions (id) ON DELETE CASCADE,
    metric_name text NOT NULL CONSTRAINT component_metrics_metric_name_check CHECK (metric_name <> ''),
    value double precision NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE component_metrics IS 'Measurements of components while they run (rows/s, latency, memory ...), written in large batches.';
COMMENT ON COLUMN component_metrics.job_execution_id IS 'The job execution during which it was measured; NULL for measurements outside a run.';
COMMENT ON COLUMN component_metrics.metric_name IS 'What was measured, e.g. rows_per_second.';
COMMENT ON COLUMN component_metrics.recorded_at IS 'When it was measured.';
-- A component's series of one metric over time (and the component_id foreign key).
CREATE INDEX component_metrics_component_id_metric_name_recorded_at_idx
    ON component_metrics (component_id, metric_name, recorded_at);
CREATE INDEX component_metrics_job_execution_id_idx ON component_metrics (job_execution_id);

CREATE TABLE events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_type text NOT NULL CONSTRAINT events_event_type_check CHECK (event_type <> ''),
    data jsonb NOT NULL,
    task_context jsonb,
    status event_status NOT NULL DEFAULT 'pending',
    idempotency_key text CONSTRAINT events_idempotency_key_key UNIQUE,
    attempts integer NOT NULL DEFAULT 0 CONSTRAINT events_attempts_check CHECK (attempts >= 0),
    claimed_by text,
    claimed_at timestamptz,
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    CONSTRAINT events_processed_after_created_check CHECK (processed_at >= created_at)
);
COMMENT ON TABLE events IS 'Incoming events, arriving in bursts and processed by concurrent consumers.';
COMMENT ON COLUMN events.event_type IS 'Kind of event, e.g. file.arrived; consumers dispatch on it.';
COMMENT ON COLUMN events.data IS 'The raw event as received.';
COMMENT ON COLUMN events.task_context IS 'Results of processing the event; NULL until processed.';
COMMENT ON COLUMN events.idempotency_key IS 'Producer-chosen key: an event sent twice with the same key is stored once.';
COMMENT ON COLUMN events.attempts IS 'How many times a consumer has claimed the event.';
COMMENT ON COLUMN events.claimed_by IS 'Id of the consumer processing it (FOR UPDATE SKIP LOCKED).';
COMMENT ON COLUMN events.claimed_at IS 'When the consumer claimed it; a stale claim means the consumer died.';
COMMENT ON COLUMN events.error IS 'Why processing failed; NULL unless failed.';
COMMENT ON COLUMN events.processed_at IS 'When processing finished (done or failed).';
-- Claiming a batch of pending events, oldest first.
CREATE INDEX events_pending_idx ON events (created_at, id) WHERE status = 'pending';
-- Finding claims left behind by dead consumers.
CREATE INDEX events_processing_idx ON events (claimed_at) WHERE status = 'processing';
-- Events of one type over time.
CREATE INDEX events_event_type_created_at_idx ON events (event_type, created_at);
-- Keyset pages of all events by time; also the retention scan by age.
CREATE INDEX events_created_at_id_idx ON events (created_at, id);
CREATE TRIGGER events_set_updated_at BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

INSERT INTO pipeline_executions OVERRIDING SYSTEM VALUE
SELECT id, pipeline_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
       queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at, rows_processed,
       error, context, updated_at
FROM pipeline_executions_partitioned;
INSERT INTO component_metrics OVERRIDING SYSTEM VALUE
SELECT id, component_id, job_execution_id, metric_name, value, recorded_at
FROM component_metrics_partitioned;
INSERT INTO events
SELECT id, event_type, data, task_context, status, idempotency_key, attempts, claimed_by,
       claimed_at, error, created_at, updated_at, processed_at
FROM events_partitioned;

-- The identities go on from where the old tables' left off (PERFORM: yoyo prints SELECTs).
DO $$
BEGIN
    PERFORM setval('pipeline_executions_id_seq',
                   greatest((SELECT last_value FROM pipeline_executions_partitioned_id_seq), 1));
    PERFORM setval('component_metrics_id_seq',
                   greatest((SELECT last_value FROM component_metrics_partitioned_id_seq), 1));
END;
$$;

ALTER TABLE step_executions DROP CONSTRAINT step_executions_pipeline_execution_id_fkey;
DROP INDEX step_executions_pipeline_execution_queued_at_id_idx;
ALTER TABLE step_executions DROP COLUMN pipeline_execution_queued_at;
ALTER TABLE step_executions
    ADD CONSTRAINT step_executions_pipeline_execution_id_fkey
    FOREIGN KEY (pipeline_execution_id) REFERENCES pipeline_executions (id) ON DELETE CASCADE;

DROP TABLE pipeline_executions_partitioned, component_metrics_partitioned, events_partitioned;
DROP FUNCTION maintain_partitions(timestamptz);
DROP FUNCTION partitions_of(regclass);
DROP TABLE partition_policies;

-- As 0006 granted them.
GRANT SELECT, INSERT, UPDATE, DELETE ON pipeline_executions, component_metrics, events
    TO etlstore_app;
