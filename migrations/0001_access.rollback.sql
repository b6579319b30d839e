-- squawk-ignore-file ban-drop-table, ban-drop-function
-- Rolling back drops exactly what 0001 created: dropping is the purpose of a rollback.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DROP TABLE role_permissions;
DROP TABLE user_roles;
DROP TABLE permissions;
DROP TABLE roles;
DROP TABLE users;
DROP FUNCTION set_updated_at();
