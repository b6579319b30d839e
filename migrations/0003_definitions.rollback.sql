-- squawk-ignore-file ban-drop-table, ban-drop-type, ban-drop-function
-- Rolling back drops exactly what 0003 created: dropping is the purpose of a rollback.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DROP TABLE config_versions;
DROP FUNCTION config_versions_reject_update();
DROP TABLE component_dependencies;
DROP FUNCTION component_dependencies_reject_cycle();
DROP TABLE components;
DROP TABLE job_tags;
DROP TABLE tags;
DROP TABLE jobs;
DROP TABLE pipeline_steps;
DROP TABLE pipelines;
DROP TYPE config_entity_type;
DROP TYPE component_status;
DROP TYPE component_type;
DROP TYPE strategy_type;
