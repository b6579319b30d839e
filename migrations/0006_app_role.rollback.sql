-- Undo 0006: take back this database's grants, then drop the role if these migrations created it
-- and no other database still grants it anything.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

REVOKE ALL ON
    users, roles, permissions, user_roles, role_permissions,
    plugins, dataclasses,
    pipelines, pipeline_steps, jobs, tags, job_tags, components, component_dependencies,
    config_versions,
    pipeline_executions, step_executions, job_executions, component_metrics, events,
    audit_log
    FROM etlstore_app;

REVOKE USAGE ON SCHEMA public FROM etlstore_app;

DO $$
BEGIN
    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM etlstore_app', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO PUBLIC', current_database());
END;
$$;

-- A separate block: its handler undoes only the DROP ROLE attempt, not the revokes above.
DO $$
BEGIN
    IF shobj_description(
        (SELECT oid FROM pg_roles WHERE rolname = 'etlstore_app'), 'pg_authid'
    ) = 'etlstore application role, created by the etlstore migrations' THEN
        DROP ROLE etlstore_app;
    END IF;
EXCEPTION
    -- Other databases on this server still use the role (it holds privileges there): keep it.
    WHEN dependent_objects_still_exist THEN
        RAISE NOTICE 'etlstore_app is still used by other databases; not dropped';
END;
$$;
