CREATE TYPE execution_status AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled');
CREATE TYPE plugin_type AS ENUM ('extractor', 'loader', 'transformer', 'utility');

CREATE TABLE plugins (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    plugin_type plugin_type NOT NULL,
    variant text,
    settings_schema jsonb NOT NULL DEFAULT '{}',
    UNIQUE (name, variant)
);

CREATE TABLE pipelines (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL UNIQUE,
    description text,
    environment jsonb NOT NULL DEFAULT '{}',
    schedule_expression text,
    retry_attempts integer NOT NULL DEFAULT 0,
    timeout interval,
    tags text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pipelines IS 'A pipeline: an ordered list of steps run together.';
COMMENT ON COLUMN pipelines.schedule_expression IS 'A cron expression; NULL when run on demand only.';

CREATE TABLE pipeline_steps (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    pipeline_id uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    position integer NOT NULL,
    plugin_id uuid NOT NULL REFERENCES plugins (id),
    configuration jsonb NOT NULL DEFAULT '{}',
    UNIQUE (pipeline_id, position)
);

CREATE TABLE pipeline_executions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_id uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    status execution_status NOT NULL DEFAULT 'queued',
    rows_processed bigint,
    cost numeric(12, 2),
    queued_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    error text
);

CREATE TABLE component_metrics (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id bigint NOT NULL,
    metric_name text NOT NULL,
    value double precision NOT NULL,
    labels jsonb,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
