-- Runtime, the high-volume part: executions of pipelines, their steps and jobs; component metrics;
-- events. Keys are bigint identities (events: uuid, as producers name them). Every index here is
-- paid on every insert, so each one serves a named access path. Plain CREATE INDEX on new tables:
-- see 0001.
-- depends: 0003_definitions

-- Fail fast instead of queueing behind long transactions (and blocking everyone queued behind us).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TYPE execution_status AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled');
COMMENT ON TYPE execution_status IS 'Lifecycle of an execution: queued -> running -> succeeded | failed; queued or running -> cancelled.';
CREATE TYPE trigger_kind AS ENUM ('user', 'schedule', 'api');
COMMENT ON TYPE trigger_kind IS 'What queued an execution.';
CREATE TYPE event_status AS ENUM ('pending', 'processing', 'done', 'failed');
COMMENT ON TYPE event_status IS 'Lifecycle of an event: pending -> processing -> done | failed.';

CREATE TABLE pipeline_executions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Executions are the history of their pipeline and go with it; audit_log keeps the deletion.
    pipeline_id uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    status execution_status NOT NULL DEFAULT 'queued',
    attempt integer NOT NULL DEFAULT 1 CONSTRAINT pipeline_executions_attempt_check CHECK (attempt >= 1),
    triggered_by trigger_kind NOT NULL,
    -- The run history outlives the account that started it.
    triggered_by_user_id uuid REFERENCES users (id) ON DELETE SET NULL,
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

CREATE TABLE step_executions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Step runs are parts of their pipeline run.
    pipeline_execution_id bigint NOT NULL REFERENCES pipeline_executions (id) ON DELETE CASCADE,
    -- The step may be removed from its pipeline later; its run history stays.
    step_id uuid REFERENCES pipeline_steps (id) ON DELETE SET NULL,
    position integer NOT NULL CONSTRAINT step_executions_position_check CHECK (position >= 0),
    status execution_status NOT NULL DEFAULT 'queued',
    started_at timestamptz,
    finished_at timestamptz,
    rows_in bigint NOT NULL DEFAULT 0 CONSTRAINT step_executions_rows_in_check CHECK (rows_in >= 0),
    rows_out bigint NOT NULL DEFAULT 0 CONSTRAINT step_executions_rows_out_check CHECK (rows_out >= 0),
    error text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT step_executions_finished_after_started_check CHECK (finished_at >= started_at),
    CONSTRAINT step_executions_pipeline_execution_id_position_key
        UNIQUE (pipeline_execution_id, position)
);
COMMENT ON TABLE step_executions IS 'The run of one step within a pipeline execution.';
COMMENT ON COLUMN step_executions.step_id IS 'The step that ran; NULL once the step has been deleted from its pipeline.';
COMMENT ON COLUMN step_executions.position IS 'Position of the step in the pipeline when it ran.';
COMMENT ON COLUMN step_executions.rows_in IS 'Rows the step read.';
COMMENT ON COLUMN step_executions.rows_out IS 'Rows the step wrote.';
COMMENT ON COLUMN step_executions.error IS 'Why it failed; NULL unless failed.';
CREATE INDEX step_executions_step_id_idx ON step_executions (step_id);
CREATE TRIGGER step_executions_set_updated_at BEFORE UPDATE ON step_executions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE job_executions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Executions are the history of their job and go with it; audit_log keeps the deletion.
    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    status execution_status NOT NULL DEFAULT 'queued',
    attempt integer NOT NULL DEFAULT 1 CONSTRAINT job_executions_attempt_check CHECK (attempt >= 1),
    triggered_by trigger_kind NOT NULL,
    triggered_by_user_id uuid REFERENCES users (id) ON DELETE SET NULL,
    idempotency_key text,
    queued_at timestamptz NOT NULL DEFAULT now(),
    claimed_by text,
    claimed_at timestamptz,
    heartbeat_at timestamptz,
    started_at timestamptz,
    finished_at timestamptz,
    rows_processed bigint NOT NULL DEFAULT 0
        CONSTRAINT job_executions_rows_processed_check CHECK (rows_processed >= 0),
    error text,
    context jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT job_executions_finished_after_started_check CHECK (finished_at >= started_at),
    CONSTRAINT job_executions_running_started_check
        CHECK (status <> 'running' OR started_at IS NOT NULL),
    CONSTRAINT job_executions_finished_when_final_check
        CHECK ((status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CONSTRAINT job_executions_idempotency_key_key UNIQUE (job_id, idempotency_key)
);
COMMENT ON TABLE job_executions IS 'One run (one attempt) of a job, from queued to finished.';
COMMENT ON COLUMN job_executions.attempt IS '1 for the first run; a retry of a failed run is queued with attempt + 1, up to jobs.num_of_retries + 1.';
COMMENT ON COLUMN job_executions.triggered_by IS 'Whether a user, the scheduler or an API client queued it.';
COMMENT ON COLUMN job_executions.triggered_by_user_id IS 'The user who queued it, when triggered_by is user.';
COMMENT ON COLUMN job_executions.idempotency_key IS 'Client-chosen key: queueing the same key for the same job again returns the first execution.';
COMMENT ON COLUMN job_executions.claimed_by IS 'Id of the worker that claimed the execution (FOR UPDATE SKIP LOCKED); NULL while queued.';
COMMENT ON COLUMN job_executions.claimed_at IS 'When the worker claimed it.';
COMMENT ON COLUMN job_executions.heartbeat_at IS 'Last sign of life from the claiming worker; a stale heartbeat means the worker died.';
COMMENT ON COLUMN job_executions.rows_processed IS 'Rows the execution has moved so far.';
COMMENT ON COLUMN job_executions.error IS 'Why it failed; NULL unless failed.';
COMMENT ON COLUMN job_executions.context IS 'Run-time parameters and state of the execution, as a JSON object.';
CREATE INDEX job_executions_job_id_queued_at_idx
    ON job_executions (job_id, queued_at DESC, id DESC);
CREATE INDEX job_executions_queued_idx ON job_executions (queued_at, id) WHERE status = 'queued';
CREATE INDEX job_executions_running_idx ON job_executions (job_id, started_at) WHERE status = 'running';
-- The running executions overall, oldest first (list_running_job_executions).
CREATE INDEX job_executions_running_started_at_idx
    ON job_executions (started_at, id) WHERE status = 'running';
CREATE INDEX job_executions_queued_at_status_idx ON job_executions (queued_at, status);
CREATE INDEX job_executions_finished_at_idx
    ON job_executions (finished_at) INCLUDE (job_id, status) WHERE finished_at IS NOT NULL;
CREATE INDEX job_executions_triggered_by_user_id_idx ON job_executions (triggered_by_user_id);
CREATE TRIGGER job_executions_set_updated_at BEFORE UPDATE ON job_executions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE component_metrics (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Metrics describe their component and its runs; they go with either.
    component_id uuid NOT NULL REFERENCES components (id) ON DELETE CASCADE,
    job_execution_id bigint REFERENCES job_executions (id) ON DELETE CASCADE,
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
