-- squawk-ignore-file ban-drop-table
-- Rolling back drops exactly what 0005 created: dropping is the purpose of a rollback.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DROP TABLE audit_log;
