-- squawk-ignore-file ban-drop-table, ban-drop-type
-- Rolling back drops exactly what 0004 created: dropping is the purpose of a rollback.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DROP TABLE events;
DROP TABLE component_metrics;
DROP TABLE job_executions;
DROP TABLE step_executions;
DROP TABLE pipeline_executions;
DROP TYPE event_status;
DROP TYPE trigger_kind;
DROP TYPE execution_status;
