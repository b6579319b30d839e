-- The catalog: plugins (the code a pipeline step runs) and dataclasses (schemas of the data that
-- flows through jobs). Plain CREATE INDEX on new tables: see 0001.
-- depends: 0001_access

-- Fail fast instead of queueing behind long transactions (and blocking everyone queued behind us).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TYPE plugin_type AS ENUM ('extractor', 'loader', 'transformer', 'utility');
COMMENT ON TYPE plugin_type IS 'What a plugin does in a pipeline.';

CREATE TABLE plugins (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CONSTRAINT plugins_name_check CHECK (name <> ''),
    plugin_type plugin_type NOT NULL,
    variant text NOT NULL DEFAULT 'default' CONSTRAINT plugins_variant_check CHECK (variant <> ''),
    version text NOT NULL,
    namespace text NOT NULL,
    settings_schema jsonb NOT NULL DEFAULT '{}',
    is_enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT plugins_name_variant_key UNIQUE (name, variant)
);
COMMENT ON TABLE plugins IS 'Installable extractors, loaders, transformers and utilities that pipeline steps run.';
COMMENT ON COLUMN plugins.variant IS 'Which implementation of the named plugin (several vendors may ship a tap-postgres).';
COMMENT ON COLUMN plugins.version IS 'Version string of the installed plugin, as its vendor spells it.';
COMMENT ON COLUMN plugins.namespace IS 'Prefix under which the plugin reads its settings (e.g. tap_postgres).';
COMMENT ON COLUMN plugins.settings_schema IS 'JSON Schema of the settings a step may give this plugin.';
COMMENT ON COLUMN plugins.is_enabled IS 'False hides the plugin from new steps; existing steps keep it.';
-- Plugins of one type sorted as listed, by (name, variant).
CREATE INDEX plugins_plugin_type_name_variant_idx ON plugins (plugin_type, name, variant);
CREATE INDEX plugins_created_at_id_idx ON plugins (created_at, id);
CREATE TRIGGER plugins_set_updated_at BEFORE UPDATE ON plugins
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE dataclasses (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CONSTRAINT dataclasses_name_key UNIQUE
        CONSTRAINT dataclasses_name_check CHECK (name <> ''),
    dataclass_type text NOT NULL,
    schema_definition jsonb NOT NULL DEFAULT '{}',
    validation_rules jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dataclasses IS 'Schemas of the records that flow between the components of jobs.';
COMMENT ON COLUMN dataclasses.dataclass_type IS 'Kind of schema (e.g. record, table, event), free text chosen by the platform.';
COMMENT ON COLUMN dataclasses.schema_definition IS 'The fields of the records, as a JSON document.';
COMMENT ON COLUMN dataclasses.validation_rules IS 'Rules each record must satisfy, as a JSON document (a list by convention).';
CREATE INDEX dataclasses_created_at_id_idx ON dataclasses (created_at, id);
CREATE TRIGGER dataclasses_set_updated_at BEFORE UPDATE ON dataclasses
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
