-- squawk-ignore-file adding-not-nullable-field, renaming-table, renaming-object, require-concurrent-index-deletion, require-concurrent-index-creation, ban-drop-table, ban-drop-constraint, adding-foreign-key-constraint, constraint-missing-not-valid
-- (squawk: this migration replaces three tables by partitioned copies in one transaction, in a
-- maintenance window: the renames, drops and the locking index and foreign key on step_executions
-- are the point of it, and nothing runs against the old tables meanwhile.)
-- Partition the high-volume tables by time range: pipeline_executions by queued_at,
-- component_metrics by recorded_at, events by created_at. Old partitions are then dropped whole
-- (retention without DELETE and VACUUM), and queries bounded in time read only their partitions.
--
-- What partitioning changes in the schema:
-- * A primary key or UNIQUE constraint of a partitioned table must include the partition key:
--   the keys become (id, queued_at), (id, recorded_at) and (id, created_at).
-- * Idempotency keys must stay unique across partitions, which no index of a partitioned table
--   can enforce: each table's keys move to a plain table of their own
--   (pipeline_execution_idempotency_keys, event_idempotency_keys), which the queries claim first
--   (INSERT ... ON CONFLICT DO NOTHING) and a trigger fills for any other insert (COPY included).
-- * step_executions reference an execution by (id, queued_at): it gains the column
--   pipeline_execution_queued_at, filled from the execution by the queries that create steps.
--
-- Each table gets the partitions its rows need plus a DEFAULT partition, so that no insert ever
-- fails for want of a partition; maintain_partitions() (`etlstore partitions maintain`, run daily)
-- creates future partitions ahead of time and drops or detaches expired ones per
-- partition_policies. The tables are rewritten (copied) once, in this transaction: on a large
-- database, run it in a maintenance window.
-- depends: 0006_app_role

SET LOCAL lock_timeout = '5s';
-- Copying the three tables takes as long as the data needs; lock_timeout still fails fast.
SET LOCAL statement_timeout = '30min';

-- Free the names (tables, sequences, indexes and constraints) for the partitioned tables. The
-- secondary indexes of the old tables are dropped now: the copy below does not need them.
ALTER TABLE pipeline_executions RENAME TO pipeline_executions_unpartitioned;
ALTER SEQUENCE pipeline_executions_id_seq RENAME TO pipeline_executions_unpartitioned_id_seq;
ALTER TABLE pipeline_executions_unpartitioned
    RENAME CONSTRAINT pipeline_executions_pkey TO pipeline_executions_unpartitioned_pkey;
ALTER TABLE pipeline_executions_unpartitioned
    RENAME CONSTRAINT pipeline_executions_idempotency_key_key
    TO pipeline_executions_unpartitioned_idempotency_key_key;
DROP INDEX pipeline_executions_pipeline_id_queued_at_idx, pipeline_executions_queued_idx,
    pipeline_executions_pipeline_id_queued_idx, pipeline_executions_running_idx,
    pipeline_executions_running_started_at_idx, pipeline_executions_queued_at_status_idx,
    pipeline_executions_finished_at_idx, pipeline_executions_triggered_by_user_id_idx;

ALTER TABLE component_metrics RENAME TO component_metrics_unpartitioned;
ALTER SEQUENCE component_metrics_id_seq RENAME TO component_metrics_unpartitioned_id_seq;
ALTER TABLE component_metrics_unpartitioned
    RENAME CONSTRAINT component_metrics_pkey TO component_metrics_unpartitioned_pkey;
DROP INDEX component_metrics_component_id_metric_name_recorded_at_idx,
    component_metrics_job_execution_id_idx;

ALTER TABLE events RENAME TO events_unpartitioned;
ALTER TABLE events_unpartitioned RENAME CONSTRAINT events_pkey TO events_unpartitioned_pkey;
ALTER TABLE events_unpartitioned
    RENAME CONSTRAINT events_idempotency_key_key TO events_unpartitioned_idempotency_key_key;
DROP INDEX events_pending_idx, events_processing_idx, events_event_type_created_at_idx,
    events_created_at_id_idx;

CREATE TABLE pipeline_executions (
    id bigint GENERATED ALWAYS AS IDENTITY,
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
    CONSTRAINT pipeline_executions_pkey PRIMARY KEY (id, queued_at),
    CONSTRAINT pipeline_executions_finished_after_started_check CHECK (finished_at >= started_at),
    CONSTRAINT pipeline_executions_running_started_check
        CHECK (status <> 'running' OR started_at IS NOT NULL),
    CONSTRAINT pipeline_executions_finished_when_final_check
        CHECK ((status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
) PARTITION BY RANGE (queued_at);
COMMENT ON TABLE pipeline_executions IS 'One run (one attempt) of a pipeline, from queued to finished. Partitioned by queued_at (see partition_policies).';
COMMENT ON COLUMN pipeline_executions.attempt IS '1 for the first run; a retry of a failed run is queued with attempt + 1, up to pipelines.retry_attempts + 1.';
COMMENT ON COLUMN pipeline_executions.triggered_by IS 'Whether a user, the scheduler or an API client queued it.';
COMMENT ON COLUMN pipeline_executions.triggered_by_user_id IS 'The user who queued it, when triggered_by is user.';
COMMENT ON COLUMN pipeline_executions.idempotency_key IS 'Client-chosen key: queueing the same key for the same pipeline again returns the first execution (unique through pipeline_execution_idempotency_keys).';
COMMENT ON COLUMN pipeline_executions.queued_at IS 'When it was queued, or when a retry becomes claimable; the partition key.';
COMMENT ON COLUMN pipeline_executions.claimed_by IS 'Id of the worker that claimed the execution (FOR UPDATE SKIP LOCKED); NULL while queued.';
COMMENT ON COLUMN pipeline_executions.claimed_at IS 'When the worker claimed it.';
COMMENT ON COLUMN pipeline_executions.heartbeat_at IS 'Last sign of life from the claiming worker; a stale heartbeat means the worker died.';
COMMENT ON COLUMN pipeline_executions.rows_processed IS 'Rows the execution has moved so far.';
COMMENT ON COLUMN pipeline_executions.error IS 'Why it failed; NULL unless failed.';
COMMENT ON COLUMN pipeline_executions.context IS 'Run-time parameters and state of the execution, as a JSON object.';
-- An execution by id alone (the callers know no queued_at): one probe of each partition's key.
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
-- Counts by status over a time window.
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
    id bigint GENERATED ALWAYS AS IDENTITY,
    -- Metrics describe their component and its runs; they go with either.
    component_id uuid NOT NULL
        CONSTRAINT component_metrics_component_id_fkey
        REFERENCES components (id) ON DELETE CASCADE,
    job_execution_id bigint
        CONSTRAINT component_metrics_job_execution_id_fkey
        REFERENCES job_executions (id) ON DELETE CASCADE,
    metric_name text NOT NULL CONSTRAINT component_metrics_metric_name_check CHECK (metric_name <> ''),
    value double precision NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT component_metrics_pkey PRIMARY KEY (id, recorded_at)
) PARTITION BY RANGE (recorded_at);
COMMENT ON TABLE component_metrics IS 'Measurements of components while they run (rows/s, latency, memory ...), written in large batches. Partitioned by recorded_at (see partition_policies).';
COMMENT ON COLUMN component_metrics.job_execution_id IS 'The job execution during which it was measured; NULL for measurements outside a run.';
COMMENT ON COLUMN component_metrics.metric_name IS 'What was measured, e.g. rows_per_second.';
COMMENT ON COLUMN component_metrics.recorded_at IS 'When it was measured; the partition key.';
-- A component's series of one metric over time (and the component_id foreign key).
CREATE INDEX component_metrics_component_id_metric_name_recorded_at_idx
    ON component_metrics (component_id, metric_name, recorded_at);
CREATE INDEX component_metrics_job_execution_id_idx ON component_metrics (job_execution_id);

CREATE TABLE events (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    event_type text NOT NULL CONSTRAINT events_event_type_check CHECK (event_type <> ''),
    data jsonb NOT NULL,
    task_context jsonb,
    status event_status NOT NULL DEFAULT 'pending',
    idempotency_key text,
    attempts integer NOT NULL DEFAULT 0 CONSTRAINT events_attempts_check CHECK (attempts >= 0),
    claimed_by text,
    claimed_at timestamptz,
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    CONSTRAINT events_pkey PRIMARY KEY (id, created_at),
    CONSTRAINT events_processed_after_created_check CHECK (processed_at >= created_at)
) PARTITION BY RANGE (created_at);
COMMENT ON TABLE events IS 'Incoming events, arriving in bursts and processed by concurrent consumers. Partitioned by created_at (see partition_policies).';
COMMENT ON COLUMN events.event_type IS 'Kind of event, e.g. file.arrived; consumers dispatch on it.';
COMMENT ON COLUMN events.data IS 'The raw event as received.';
COMMENT ON COLUMN events.task_context IS 'Results of processing the event; NULL until processed.';
COMMENT ON COLUMN events.idempotency_key IS 'Producer-chosen key: an event sent twice with the same key is stored once (unique through event_idempotency_keys).';
COMMENT ON COLUMN events.attempts IS 'How many times a consumer has claimed the event.';
COMMENT ON COLUMN events.claimed_by IS 'Id of the consumer processing it (FOR UPDATE SKIP LOCKED).';
COMMENT ON COLUMN events.claimed_at IS 'When the consumer claimed it; a stale claim means the consumer died.';
COMMENT ON COLUMN events.error IS 'Why processing failed; NULL unless failed.';
COMMENT ON COLUMN events.created_at IS 'When it was ingested; the partition key.';
COMMENT ON COLUMN events.processed_at IS 'When processing finished (done or failed).';
-- Claiming a batch of pending events, oldest first.
CREATE INDEX events_pending_idx ON events (created_at, id) WHERE status = 'pending';
-- Finding claims left behind by dead consumers.
CREATE INDEX events_processing_idx ON events (claimed_at) WHERE status = 'processing';
-- Events of one type over time.
CREATE INDEX events_event_type_created_at_idx ON events (event_type, created_at);
-- Keyset pages of all events by time.
CREATE INDEX events_created_at_id_idx ON events (created_at, id);
CREATE TRIGGER events_set_updated_at BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The idempotency keys, unique across partitions. A key goes with its row (deleted, or dropped
-- with its partition by maintain_partitions).
CREATE TABLE pipeline_execution_idempotency_keys (
    pipeline_id uuid NOT NULL,
    idempotency_key text NOT NULL,
    pipeline_execution_id bigint NOT NULL,
    queued_at timestamptz NOT NULL,
    CONSTRAINT pipeline_executions_idempotency_key_key PRIMARY KEY (pipeline_id, idempotency_key),
    -- Checked at the end of the statement: the queries claim the key before inserting its row.
    CONSTRAINT pipeline_execution_idempotency_keys_pipeline_execution_id_fkey
        FOREIGN KEY (pipeline_execution_id, queued_at)
        REFERENCES pipeline_executions (id, queued_at) ON DELETE CASCADE
);
COMMENT ON TABLE pipeline_execution_idempotency_keys IS 'The idempotency keys of pipeline executions, unique per pipeline across all partitions; the key of execution (pipeline_execution_id, queued_at).';
-- The foreign key's index; by time first, so that retention finds a partition's keys by range.
CREATE INDEX pipeline_execution_idempotency_keys_queued_at_id_idx
    ON pipeline_execution_idempotency_keys (queued_at, pipeline_execution_id);

CREATE TABLE event_idempotency_keys (
    idempotency_key text NOT NULL,
    event_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT events_idempotency_key_key PRIMARY KEY (idempotency_key),
    CONSTRAINT event_idempotency_keys_event_id_fkey
        FOREIGN KEY (event_id, created_at) REFERENCES events (id, created_at) ON DELETE CASCADE
);
COMMENT ON TABLE event_idempotency_keys IS 'The idempotency keys of events, unique across all partitions; the key of event (event_id, created_at).';
CREATE INDEX event_idempotency_keys_created_at_event_id_idx
    ON event_idempotency_keys (created_at, event_id);

-- A row inserted with a key that no query claimed first (COPY, say) claims it here; a key taken
-- by another row is a unique violation of the key's constraint, as a UNIQUE column would raise.
CREATE FUNCTION claim_pipeline_execution_idempotency_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Claimed already by the inserting query (the usual case): one index probe, nothing else.
    PERFORM FROM pipeline_execution_idempotency_keys
    WHERE pipeline_id = NEW.pipeline_id AND idempotency_key = NEW.idempotency_key
      AND pipeline_execution_id = NEW.id AND queued_at = NEW.queued_at;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO pipeline_execution_idempotency_keys
        (pipeline_id, idempotency_key, pipeline_execution_id, queued_at)
    VALUES (NEW.pipeline_id, NEW.idempotency_key, NEW.id, NEW.queued_at)
    ON CONFLICT (pipeline_id, idempotency_key) DO NOTHING;
    IF NOT FOUND THEN
        RAISE unique_violation USING
            MESSAGE = 'duplicate key value violates unique constraint "pipeline_executions_idempotency_key_key"',
            DETAIL = format('Key (pipeline_id, idempotency_key)=(%s, %s) already exists.',
                            NEW.pipeline_id, NEW.idempotency_key),
            SCHEMA = TG_TABLE_SCHEMA,
            TABLE = 'pipeline_executions',
            CONSTRAINT = 'pipeline_executions_idempotency_key_key';
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION claim_pipeline_execution_idempotency_key() IS 'Trigger: registers the idempotency key of an inserted pipeline execution; a key of another execution is a unique violation.';
CREATE TRIGGER pipeline_executions_claim_idempotency_key AFTER INSERT ON pipeline_executions
    FOR EACH ROW WHEN (NEW.idempotency_key IS NOT NULL)
    EXECUTE FUNCTION claim_pipeline_execution_idempotency_key();

CREATE FUNCTION claim_event_idempotency_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM FROM event_idempotency_keys
    WHERE idempotency_key = NEW.idempotency_key AND event_id = NEW.id
      AND created_at = NEW.created_at;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO event_idempotency_keys (idempotency_key, event_id, created_at)
    VALUES (NEW.idempotency_key, NEW.id, NEW.created_at)
    ON CONFLICT (idempotency_key) DO NOTHING;
    IF NOT FOUND THEN
        RAISE unique_violation USING
            MESSAGE = 'duplicate key value violates unique constraint "events_idempotency_key_key"',
            DETAIL = format('Key (idempotency_key)=(%s) already exists.', NEW.idempotency_key),
            SCHEMA = TG_TABLE_SCHEMA,
            TABLE = 'events',
            CONSTRAINT = 'events_idempotency_key_key';
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION claim_event_idempotency_key() IS 'Trigger: registers the idempotency key of an inserted event; a key of another event is a unique violation.';
CREATE TRIGGER events_claim_idempotency_key AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.idempotency_key IS NOT NULL)
    EXECUTE FUNCTION claim_event_idempotency_key();

-- How each partitioned table is partitioned and kept.
CREATE TABLE partition_policies (
    table_name text PRIMARY KEY CONSTRAINT partition_policies_table_name_check
        CHECK (table_name IN ('pipeline_executions', 'component_metrics', 'events')),
    partition_unit text NOT NULL DEFAULT 'month' CONSTRAINT partition_policies_partition_unit_check
        CHECK (partition_unit IN ('day', 'week', 'month')),
    premake integer NOT NULL DEFAULT 3
        CONSTRAINT partition_policies_premake_check CHECK (premake BETWEEN 1 AND 400),
    retention interval CONSTRAINT partition_policies_retention_check CHECK (retention > '0'),
    retention_action text NOT NULL DEFAULT 'drop'
        CONSTRAINT partition_policies_retention_action_check
        CHECK (retention_action IN ('drop', 'detach')),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE partition_policies IS 'How each partitioned table is partitioned and kept; maintain_partitions() applies it. @vet small: one row per partitioned table';
COMMENT ON COLUMN partition_policies.partition_unit IS 'Each partition holds one day, week (from Monday) or month, in UTC.';
COMMENT ON COLUMN partition_policies.premake IS 'How many partitions after the current one are kept created ahead of time.';
COMMENT ON COLUMN partition_policies.retention IS 'Partitions whose rows are all older than this are dropped or detached; NULL keeps everything.';
COMMENT ON COLUMN partition_policies.retention_action IS 'drop: the expired partition is dropped; detach: it is detached and kept as a table of its own (to archive, then drop by hand).';
CREATE TRIGGER partition_policies_set_updated_at BEFORE UPDATE ON partition_policies
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
INSERT INTO partition_policies (table_name) VALUES
    ('pipeline_executions'), ('component_metrics'), ('events');

-- The partitions of a partitioned table with their bounds, oldest first, the default last.
CREATE FUNCTION partitions_of(parent regclass)
RETURNS TABLE (partition_name text, lower_bound timestamptz, upper_bound timestamptz,
               is_default boolean, estimated_rows bigint)
LANGUAGE sql STABLE
-- pg_get_expr prints the bounds in the session's time zone; UTC parses back to the same instant.
SET TimeZone = 'UTC'
AS $$
    SELECT c.relname::text,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']*)''\)'))[1]::timestamptz,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']*)''\)'))[1]::timestamptz,
           pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT',
           greatest(c.reltuples, 0)::bigint
    FROM pg_inherits AS i
    JOIN pg_class AS c ON c.oid = i.inhrelid
    WHERE i.inhparent = parent
    ORDER BY 2 NULLS LAST
$$;
COMMENT ON FUNCTION partitions_of(regclass) IS 'The partitions of a partitioned table with their bounds (NULL for the default partition) and estimated row counts.';

-- Creates future partitions and retires expired ones, per partition_policies, as of `at`.
CREATE FUNCTION maintain_partitions(at timestamptz DEFAULT now())
RETURNS TABLE (table_name text, partition_name text, action text, lower_bound timestamptz,
               upper_bound timestamptz, affected_rows bigint)
LANGUAGE plpgsql
-- Bounds are whole UTC days, weeks and months, whatever the caller's time zone.
SET TimeZone = 'UTC'
-- Creating, detaching and dropping a partition take an ACCESS EXCLUSIVE lock on the table, which
-- waits for every transaction using it while every new query queues behind the wait: give up
-- after 1 s (the caller tries again) rather than stall the application longer.
SET lock_timeout = '1s'
AS $$
DECLARE
    policy partition_policies;
    step interval;
    key_column text;
    default_partition text;
    cutoff timestamptz;
    lo timestamptz;
    hi timestamptz;
    covered_until timestamptz;
    next_start timestamptz;
    part record;
    n bigint;
BEGIN
    FOR policy IN SELECT * FROM partition_policies AS p ORDER BY p.table_name LOOP
        step := ('1 ' || policy.partition_unit)::interval;
        SELECT a.attname INTO STRICT key_column
        FROM pg_partitioned_table AS t
        JOIN pg_attribute AS a ON a.attrelid = t.partrelid AND a.attnum = t.partattrs[0]
        WHERE t.partrelid = policy.table_name::regclass;
        SELECT p.partition_name INTO default_partition
        FROM partitions_of(policy.table_name::regclass) AS p WHERE p.is_default;

        -- The partition holding `at` and `premake` more after it.
        FOR i IN 0 .. policy.premake LOOP
            lo := date_trunc(policy.partition_unit, at + i * step);
            hi := lo + step;
            -- Only what no partition covers yet: after a change of unit, partitions of the old
            -- one may cover the start or the end of this range.
            SELECT max(p.upper_bound) FILTER (WHERE p.lower_bound <= lo),
                   min(p.lower_bound) FILTER (WHERE p.lower_bound > lo)
            INTO covered_until, next_start
            FROM partitions_of(policy.table_name::regclass) AS p
            WHERE NOT p.is_default AND p.lower_bound < hi AND p.upper_bound > lo;
            lo := greatest(lo, coalesce(covered_until, lo));
            hi := least(hi, coalesce(next_start, hi));
            CONTINUE WHEN lo >= hi;
            -- Rows of this range in the default partition would have to move first; they stay
            -- readable there, and this is reported until someone moves them.
            EXECUTE format('SELECT count(*) FROM %I WHERE %I >= $1 AND %I < $2',
                           default_partition, key_column, key_column)
                INTO n USING lo, hi;
            IF n > 0 THEN
                RETURN QUERY SELECT policy.table_name, NULL::text, 'blocked by rows in the default partition', lo, hi, n;
                CONTINUE;
            END IF;
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                           policy.table_name || '_p' || to_char(lo, 'YYYYMMDD'),
                           policy.table_name, lo, hi);
            RETURN QUERY SELECT policy.table_name, policy.table_name || '_p' || to_char(lo, 'YYYYMMDD'),
                                'created', lo, hi, 0::bigint;
        END LOOP;

        CONTINUE WHEN policy.retention IS NULL;
        cutoff := at - policy.retention;
        FOR part IN
            SELECT p.partition_name, p.lower_bound, p.upper_bound
            FROM partitions_of(policy.table_name::regclass) AS p
            WHERE NOT p.is_default AND p.upper_bound <= cutoff
        LOOP
            -- What refers to the partition's rows goes first: detaching checks that nothing does.
            IF policy.table_name = 'pipeline_executions' THEN
                DELETE FROM step_executions
                WHERE pipeline_execution_queued_at >= part.lower_bound
                  AND pipeline_execution_queued_at < part.upper_bound;
                DELETE FROM pipeline_execution_idempotency_keys
                WHERE queued_at >= part.lower_bound AND queued_at < part.upper_bound;
            ELSIF policy.table_name = 'events' THEN
                DELETE FROM event_idempotency_keys
                WHERE created_at >= part.lower_bound AND created_at < part.upper_bound;
            END IF;
            EXECUTE format('SELECT count(*) FROM %I', part.partition_name) INTO n;
            EXECUTE format('ALTER TABLE %I DETACH PARTITION %I',
                           policy.table_name, part.partition_name);
            IF policy.retention_action = 'drop' THEN
                EXECUTE format('DROP TABLE %I', part.partition_name);
            END IF;
            RETURN QUERY SELECT policy.table_name, part.partition_name,
                                CASE policy.retention_action WHEN 'drop' THEN 'dropped' ELSE 'detached' END,
                                part.lower_bound, part.upper_bound, n;
        END LOOP;
        -- Expired rows that landed in the default partition (inserted while no partition of
        -- their range existed) go row by row, and their steps and keys with them (ON DELETE
        -- CASCADE).
        EXECUTE format('DELETE FROM %I WHERE %I < $1', default_partition, key_column) USING cutoff;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n > 0 THEN
            RETURN QUERY SELECT policy.table_name, default_partition, 'deleted expired rows',
                                NULL::timestamptz, cutoff, n;
        END IF;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION maintain_partitions(timestamptz) IS 'Creates the partitions each partitioned table needs from `at` on and drops or detaches those past their retention, per partition_policies; returns what it did.';
-- The owner runs maintenance (`etlstore partitions maintain`); the application role never does.
REVOKE EXECUTE ON FUNCTION maintain_partitions(timestamptz), partitions_of(regclass) FROM PUBLIC;

-- step_executions refer to their execution by its whole key.
ALTER TABLE step_executions ADD COLUMN pipeline_execution_queued_at timestamptz;
COMMENT ON COLUMN step_executions.pipeline_execution_queued_at IS 'queued_at of the pipeline execution: with pipeline_execution_id, the key of the (partitioned) execution.';

-- The partitions the existing rows need (by UTC month), the default ones, then the copy.
DO $$
DECLARE
    target record;
    lo timestamptz;
BEGIN
    SET LOCAL TimeZone = 'UTC';
    FOR target IN
        SELECT * FROM (VALUES
            ('pipeline_executions', 'pipeline_executions_unpartitioned', 'queued_at'),
            ('component_metrics', 'component_metrics_unpartitioned', 'recorded_at'),
            ('events', 'events_unpartitioned', 'created_at')
        ) AS t (parent, source, key_column)
    LOOP
        FOR lo IN EXECUTE format('SELECT DISTINCT date_trunc(''month'', %I) FROM %I',
                                 target.key_column, target.source)
        LOOP
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                           target.parent || '_p' || to_char(lo, 'YYYYMMDD'), target.parent,
                           lo, lo + interval '1 month');
        END LOOP;
        EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT',
                       target.parent || '_default', target.parent);
    END LOOP;
END;
$$;
-- This month and the next premake ones, before the copy so that it needs no default partition.
DO $$
BEGIN
    PERFORM FROM maintain_partitions();
END;
$$;

INSERT INTO pipeline_executions OVERRIDING SYSTEM VALUE
SELECT id, pipeline_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
       queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at, rows_processed,
       error, context, updated_at
FROM pipeline_executions_unpartitioned;
INSERT INTO component_metrics OVERRIDING SYSTEM VALUE
SELECT id, component_id, job_execution_id, metric_name, value, recorded_at
FROM component_metrics_unpartitioned;
-- The copy keeps updated_at: the BEFORE UPDATE trigger does not fire on INSERT.
INSERT INTO events
SELECT id, event_type, data, task_context, status, idempotency_key, attempts, claimed_by,
       claimed_at, error, created_at, updated_at, processed_at
FROM events_unpartitioned;

-- The identities go on from where the old tables' left off (PERFORM: yoyo prints SELECTs).
DO $$
BEGIN
    PERFORM setval(pg_get_serial_sequence('pipeline_executions', 'id'),
                   greatest((SELECT last_value FROM pipeline_executions_unpartitioned_id_seq), 1));
    PERFORM setval(pg_get_serial_sequence('component_metrics', 'id'),
                   greatest((SELECT last_value FROM component_metrics_unpartitioned_id_seq), 1));
END;
$$;

UPDATE step_executions AS s
SET pipeline_execution_queued_at = e.queued_at
FROM pipeline_executions_unpartitioned AS e
WHERE e.id = s.pipeline_execution_id;

ALTER TABLE step_executions ALTER COLUMN pipeline_execution_queued_at SET NOT NULL;
ALTER TABLE step_executions DROP CONSTRAINT step_executions_pipeline_execution_id_fkey;
DROP TABLE pipeline_executions_unpartitioned, component_metrics_unpartitioned, events_unpartitioned;

ALTER TABLE step_executions
    ADD CONSTRAINT step_executions_pipeline_execution_id_fkey
    FOREIGN KEY (pipeline_execution_id, pipeline_execution_queued_at)
    REFERENCES pipeline_executions (id, queued_at) ON DELETE CASCADE;
-- The foreign key's index; by time first, so that retention finds a partition's steps by range.
CREATE INDEX step_executions_pipeline_execution_queued_at_id_idx
    ON step_executions (pipeline_execution_queued_at, pipeline_execution_id);

-- The dropped tables took their grants along.
GRANT SELECT, INSERT, UPDATE, DELETE ON pipeline_executions, component_metrics, events
    TO etlstore_app;
-- The application claims keys and reads them; they go with their rows (ON DELETE CASCADE, run as
-- the owner) or with retention, which the owner runs.
GRANT SELECT, INSERT ON pipeline_execution_idempotency_keys, event_idempotency_keys TO etlstore_app;

-- The planner's statistics of the copied rows, before the first query plans against them (the
-- autovacuum daemon never analyzes a partitioned table itself). Empty tables (a new database)
-- have nothing to measure.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pipeline_executions) OR EXISTS (SELECT FROM component_metrics)
        OR EXISTS (SELECT FROM events) THEN
        ANALYZE pipeline_executions, component_metrics, events, step_executions,
            pipeline_execution_idempotency_keys, event_idempotency_keys;
    END IF;
END;
$$;
