-- The application role, etlstore_app: what services log in as. It may read and write the rows of
-- the application tables and nothing else: no DDL (it owns nothing and has CREATE nowhere), and no
-- access to yoyo's own tables. The migrating user (the one running yoyo) owns the schema.
-- depends: 0001_access 0002_catalog 0003_definitions 0004_runtime 0005_governance

-- Fail fast instead of queueing behind long transactions (and blocking everyone queued behind us).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- Roles are cluster-wide and other databases on the server may have created it already. LOGIN
-- without a password: the operator sets one (ALTER ROLE etlstore_app PASSWORD ...) or maps it in
-- pg_hba.conf. The role comment marks a role these migrations created, which rollback may drop.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'etlstore_app') THEN
        CREATE ROLE etlstore_app LOGIN;
        COMMENT ON ROLE etlstore_app IS 'etlstore application role, created by the etlstore migrations';
    END IF;
EXCEPTION
    -- Another database's migration created it at the same moment.
    WHEN duplicate_object OR unique_violation THEN
        NULL;
END;
$$;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO etlstore_app', current_database());
    -- PUBLIC holds TEMPORARY by default: temporary tables are session state the runtime must
    -- never leave behind, and nothing here needs them.
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END;
$$;

GRANT USAGE ON SCHEMA public TO etlstore_app;

-- Listed one by one, never ALL TABLES IN SCHEMA: yoyo's tables live in the same schema.
GRANT SELECT, INSERT, UPDATE, DELETE ON
    users, roles, permissions, user_roles, role_permissions,
    plugins, dataclasses,
    pipelines, pipeline_steps, jobs, tags, job_tags, components, component_dependencies,
    pipeline_executions, step_executions, job_executions, component_metrics, events
    TO etlstore_app;
-- Append-only history: the application adds rows and reads them, never changes or removes them.
-- Retention (deleting old rows) runs as the owner.
GRANT SELECT, INSERT ON config_versions, audit_log TO etlstore_app;
