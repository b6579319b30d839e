-- squawk-ignore-file ban-drop-table, ban-drop-type
-- Rolling back drops exactly what 0002 created: dropping is the purpose of a rollback.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DROP TABLE dataclasses;
DROP TABLE plugins;
DROP TYPE plugin_type;
