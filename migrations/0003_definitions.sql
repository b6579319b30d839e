-- Definitions: pipelines and their ordered steps; jobs, their tags, their components and the DAG of
-- dependencies between components; immutable configuration versions of pipelines and jobs.
-- Plain CREATE INDEX on new tables: see 0001.
-- depends: 0001_access 0002_catalog

-- Fail fast instead of queueing behind long transactions (and blocking everyone queued behind us).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TYPE strategy_type AS ENUM ('batch', 'streaming', 'incremental');
COMMENT ON TYPE strategy_type IS 'How a job moves its data.';
CREATE TYPE component_type AS ENUM ('extractor', 'transformer', 'loader', 'validator');
COMMENT ON TYPE component_type IS 'The role of a component (a node) in a job.';
CREATE TYPE component_status AS ENUM ('draft', 'active', 'disabled');
COMMENT ON TYPE component_status IS 'Lifecycle of a component definition: only active components run.';
CREATE TYPE config_entity_type AS ENUM ('pipeline', 'job');
COMMENT ON TYPE config_entity_type IS 'Which kind of definition a configuration version belongs to.';

CREATE TABLE pipelines (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CONSTRAINT pipelines_name_key UNIQUE
        CONSTRAINT pipelines_name_check CHECK (name <> ''),
    description text NOT NULL DEFAULT '',
    environment_variables jsonb NOT NULL DEFAULT '{}',
    schedule_expression text,
    timezone text NOT NULL DEFAULT 'UTC',
    max_concurrent_executions integer NOT NULL DEFAULT 1
        CONSTRAINT pipelines_max_concurrent_executions_check CHECK (max_concurrent_executions >= 1),
    timeout_seconds integer CONSTRAINT pipelines_timeout_seconds_check CHECK (timeout_seconds > 0),
    retry_attempts integer NOT NULL DEFAULT 0
        CONSTRAINT pipelines_retry_attempts_check CHECK (retry_attempts >= 0),
    retry_delay_seconds integer NOT NULL DEFAULT 60
        CONSTRAINT pipelines_retry_delay_seconds_check CHECK (retry_delay_seconds >= 0),
    is_paused boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pipelines IS 'A named, scheduled sequence of steps, each running a plugin.';
COMMENT ON COLUMN pipelines.environment_variables IS 'Variables set for every step of the pipeline, as a JSON object of strings.';
COMMENT ON COLUMN pipelines.schedule_expression IS 'Cron expression of when the scheduler queues the pipeline; NULL runs it only on demand.';
COMMENT ON COLUMN pipelines.timezone IS 'IANA time zone the schedule expression is read in.';
COMMENT ON COLUMN pipelines.max_concurrent_executions IS 'How many executions of this pipeline may run at the same time.';
COMMENT ON COLUMN pipelines.timeout_seconds IS 'An execution running longer than this is failed; NULL for no limit.';
COMMENT ON COLUMN pipelines.retry_attempts IS 'How many times a failed execution is retried (0: never).';
COMMENT ON COLUMN pipelines.retry_delay_seconds IS 'Wait before queueing a retry of a failed execution.';
COMMENT ON COLUMN pipelines.is_paused IS 'True stops the scheduler from queueing it; manual runs still work.';
CREATE INDEX pipelines_created_at_id_idx ON pipelines (created_at, id);
-- What the scheduler scans: pipelines with a schedule that are not paused.
CREATE INDEX pipelines_scheduled_idx ON pipelines (name)
    WHERE schedule_expression IS NOT NULL AND NOT is_paused;
CREATE TRIGGER pipelines_set_updated_at BEFORE UPDATE ON pipelines
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE pipeline_steps (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Steps are parts of their pipeline: they go with it.
    pipeline_id uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    position integer NOT NULL CONSTRAINT pipeline_steps_position_check CHECK (position >= 0),
    -- A plugin that steps still use cannot be deleted; disable it instead (plugins.is_enabled).
    plugin_id uuid NOT NULL REFERENCES plugins (id) ON DELETE RESTRICT,
    configuration jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- Not deferrable, so that INSERT ... ON CONFLICT can name it. Reordering rewrites the steps.
    CONSTRAINT pipeline_steps_pipeline_id_position_key UNIQUE (pipeline_id, position)
);
COMMENT ON TABLE pipeline_steps IS 'The ordered steps of a pipeline, each running one plugin.';
COMMENT ON COLUMN pipeline_steps.position IS 'Order of the step in its pipeline (ascending, unique per pipeline).';
COMMENT ON COLUMN pipeline_steps.configuration IS 'Settings given to the plugin, checked against plugins.settings_schema by the platform.';
-- The steps that use a plugin, in keyset pages (and the plugin_id foreign key).
CREATE INDEX pipeline_steps_plugin_id_id_idx ON pipeline_steps (plugin_id, id);
CREATE TRIGGER pipeline_steps_set_updated_at BEFORE UPDATE ON pipeline_steps
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CONSTRAINT jobs_name_key UNIQUE CONSTRAINT jobs_name_check CHECK (name <> ''),
    description text NOT NULL DEFAULT '',
    num_of_retries integer NOT NULL DEFAULT 0
        CONSTRAINT jobs_num_of_retries_check CHECK (num_of_retries >= 0),
    file_logging boolean NOT NULL DEFAULT false,
    strategy_type strategy_type NOT NULL DEFAULT 'batch',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE jobs IS 'A DAG of components (extract, transform, validate, load) run as one unit.';
COMMENT ON COLUMN jobs.num_of_retries IS 'How many times a failed execution of the job is retried (0: never).';
COMMENT ON COLUMN jobs.file_logging IS 'True writes the job''s log to a file as well as to the platform log.';
CREATE INDEX jobs_created_at_id_idx ON jobs (created_at, id);
CREATE TRIGGER jobs_set_updated_at BEFORE UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE tags (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CONSTRAINT tags_name_key UNIQUE CONSTRAINT tags_name_check CHECK (name <> ''),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE tags IS 'Labels for grouping and finding jobs. @vet small: a curated vocabulary of at most hundreds of labels.';
CREATE INDEX tags_created_at_id_idx ON tags (created_at, id);
CREATE TRIGGER tags_set_updated_at BEFORE UPDATE ON tags
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- A tagging means nothing without its job and its tag: it goes with either.
CREATE TABLE job_tags (
    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    tag_id uuid NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT job_tags_pkey PRIMARY KEY (job_id, tag_id)
);
COMMENT ON TABLE job_tags IS 'Which tags each job carries.';
CREATE INDEX job_tags_tag_id_job_id_idx ON job_tags (tag_id, job_id);

CREATE TABLE components (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Components are parts of their job: they go with it.
    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name text NOT NULL CONSTRAINT components_name_check CHECK (name <> ''),
    component_type component_type NOT NULL,
    configuration jsonb NOT NULL DEFAULT '{}',
    status component_status NOT NULL DEFAULT 'active',
    -- A dataclass that components still use cannot be deleted.
    dataclass_id uuid REFERENCES dataclasses (id) ON DELETE RESTRICT,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT components_job_id_name_key UNIQUE (job_id, name),
    -- The target of component_dependencies' composite keys, which keep every edge inside one job.
    CONSTRAINT components_job_id_id_key UNIQUE (job_id, id)
);
COMMENT ON TABLE components IS 'The nodes of a job: each extracts, transforms, validates or loads data.';
COMMENT ON COLUMN components.configuration IS 'Settings of the component, as a JSON object.';
COMMENT ON COLUMN components.dataclass_id IS 'Schema of the records the component produces; NULL when it has none.';
CREATE INDEX components_dataclass_id_idx ON components (dataclass_id);
CREATE TRIGGER components_set_updated_at BEFORE UPDATE ON components
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE component_dependencies (
    job_id uuid NOT NULL,
    component_id uuid NOT NULL,
    depends_on_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT component_dependencies_pkey PRIMARY KEY (job_id, component_id, depends_on_id),
    -- Composite keys through components(job_id, id): both ends must be components of the edge's job.
    -- An edge goes with either of its components.
    CONSTRAINT component_dependencies_component_fkey FOREIGN KEY (job_id, component_id)
        REFERENCES components (job_id, id) ON DELETE CASCADE,
    CONSTRAINT component_dependencies_depends_on_fkey FOREIGN KEY (job_id, depends_on_id)
        REFERENCES components (job_id, id) ON DELETE CASCADE,
    CONSTRAINT component_dependencies_no_self_dependency CHECK (component_id <> depends_on_id)
);
COMMENT ON TABLE component_dependencies IS 'Edges of a job''s DAG: component_id runs after depends_on_id. No self-edges, no cycles, never across jobs.';
COMMENT ON COLUMN component_dependencies.job_id IS 'The job both components belong to (enforced by the composite foreign keys).';
COMMENT ON COLUMN component_dependencies.component_id IS 'The dependent component: it runs after depends_on_id.';
COMMENT ON COLUMN component_dependencies.depends_on_id IS 'The component that must finish first.';
CREATE INDEX component_dependencies_depends_on_idx
    ON component_dependencies (job_id, depends_on_id, component_id);

CREATE FUNCTION component_dependencies_reject_cycle() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Serialise edge changes per job so two transactions cannot each add half of a cycle. Under
    -- READ COMMITTED the walk below then sees the other transaction's committed edges.
    PERFORM 1 FROM jobs WHERE id = NEW.job_id FOR NO KEY UPDATE;
    IF EXISTS (
        WITH RECURSIVE upstream (id) AS (
            SELECT d.depends_on_id FROM component_dependencies AS d
            WHERE d.job_id = NEW.job_id AND d.component_id = NEW.depends_on_id
            UNION
            SELECT d.depends_on_id FROM component_dependencies AS d
            JOIN upstream AS u ON d.component_id = u.id
            WHERE d.job_id = NEW.job_id
        )
        SELECT 1 FROM upstream WHERE id = NEW.component_id
    ) THEN
        RAISE EXCEPTION 'component % cannot depend on %: that would close a cycle',
            NEW.component_id, NEW.depends_on_id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'component_dependencies_no_cycle',
                  TABLE = 'component_dependencies',
                  SCHEMA = TG_TABLE_SCHEMA;
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION component_dependencies_reject_cycle() IS
    'Constraint trigger: rejects an edge that closes a cycle (SQLSTATE 23514, constraint component_dependencies_no_cycle).';
-- A constraint trigger fires after the statement's rows are all in, so a multi-row insert that
-- closes a cycle among its own rows is caught too.
CREATE CONSTRAINT TRIGGER component_dependencies_no_cycle
    AFTER INSERT OR UPDATE ON component_dependencies
    FOR EACH ROW EXECUTE FUNCTION component_dependencies_reject_cycle();

CREATE TABLE config_versions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity_type config_entity_type NOT NULL,
    -- No foreign key: the history of a deleted pipeline or job is kept for the audit.
    entity_id uuid NOT NULL,
    version integer NOT NULL CONSTRAINT config_versions_version_check CHECK (version >= 1),
    configuration jsonb NOT NULL,
    -- The history outlives the account that wrote it; actor keeps the name.
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    actor text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT config_versions_entity_version_key UNIQUE (entity_type, entity_id, version)
);
COMMENT ON TABLE config_versions IS 'Immutable, numbered versions of each pipeline''s and job''s whole configuration, for reading back and restoring.';
COMMENT ON COLUMN config_versions.entity_type IS 'Whether entity_id is a pipeline or a job.';
COMMENT ON COLUMN config_versions.entity_id IS 'Id of the pipeline or job (not a foreign key: versions outlive the entity).';
COMMENT ON COLUMN config_versions.version IS 'Number of the version for its entity: 1, 2, ... in order of writing.';
COMMENT ON COLUMN config_versions.configuration IS 'The entity''s whole configuration at this version (for a pipeline, its steps too).';
COMMENT ON COLUMN config_versions.created_by IS 'User who wrote the version; NULL for the system or a deleted user.';
COMMENT ON COLUMN config_versions.actor IS 'Who wrote the version, as shown to people: a username, or system.';
CREATE INDEX config_versions_created_by_idx ON config_versions (created_by);

CREATE FUNCTION config_versions_reject_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'config_versions rows are immutable: write a new version instead'
        USING ERRCODE = 'object_not_in_prerequisite_state',
              TABLE = 'config_versions',
              SCHEMA = TG_TABLE_SCHEMA;
END;
$$;
COMMENT ON FUNCTION config_versions_reject_update() IS
    'BEFORE UPDATE trigger: configuration versions are never changed (SQLSTATE 55000).';
CREATE TRIGGER config_versions_immutable BEFORE UPDATE ON config_versions
    FOR EACH ROW EXECUTE FUNCTION config_versions_reject_update();
