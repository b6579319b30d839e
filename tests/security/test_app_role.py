"""The application role holds DML on the application tables and nothing else.

tests/test_schema.py covers the role's table grants, DML and the common DDL (CREATE TABLE, SCHEMA,
INDEX, FUNCTION, TYPE, ALTER/DROP TABLE, TRUNCATE, SELECT on yoyo's tables); this module adds the
other kinds of DDL, writes to yoyo's tables, and the role's privileges as the server computes them
(through PUBLIC and memberships too), each refusal checked for SQLSTATE 42501.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, LiteralString

import psycopg
import pytest

from tests._catalog import APP_ROLE
from tests.test_schema import APPEND_ONLY, OWNER_ONLY, TABLES, YOYO_TABLES

_INSUFFICIENT_PRIVILEGE: Final = "42501"
_DML: Final = ("SELECT", "INSERT", "UPDATE", "DELETE")

_DDL: Final[tuple[LiteralString, ...]] = (
    "CREATE VIEW scratch AS SELECT 1 AS one",
    "CREATE MATERIALIZED VIEW scratch AS SELECT 1 AS one",
    "CREATE TABLE scratch AS SELECT 1 AS one",
    "CREATE SEQUENCE scratch",
    "CREATE DOMAIN scratch AS int",
    "CREATE PROCEDURE scratch() LANGUAGE sql AS 'SELECT 1'",
    "CREATE AGGREGATE scratch (int) (sfunc = int4pl, stype = int)",
    "CREATE OPERATOR === (leftarg = int, rightarg = int, function = int4eq)",
    "CREATE TRIGGER scratch BEFORE UPDATE ON tags FOR EACH ROW EXECUTE FUNCTION set_updated_at()",
    "CREATE RULE scratch AS ON INSERT TO tags DO INSTEAD NOTHING",
    "CREATE POLICY scratch ON tags USING (true)",
    "CREATE STATISTICS scratch ON id, name FROM tags",
    "CREATE SCHEMA AUTHORIZATION etlstore_app",
    "CREATE EXTENSION pg_stat_statements",
    "CREATE PUBLICATION scratch FOR TABLE tags",
    "CREATE EVENT TRIGGER scratch ON ddl_command_start EXECUTE FUNCTION set_updated_at()",
    "CREATE ROLE scratch",
    "ALTER ROLE etlstore_app SUPERUSER",
    "ALTER ROLE etlstore_app CREATEDB",
    "ALTER TABLE tags RENAME TO scratch",
    "ALTER TABLE tags OWNER TO etlstore_app",
    "ALTER TABLE tags DISABLE TRIGGER ALL",
    "ALTER TABLE config_versions DISABLE TRIGGER USER",
    "ALTER FUNCTION set_updated_at() SECURITY DEFINER",
    "ALTER TYPE plugin_type ADD VALUE 'scratch'",
    "COMMENT ON TABLE tags IS 'scratch'",
    "DROP INDEX tags_name_key",
    "DROP FUNCTION set_updated_at()",
    "DROP TYPE plugin_type",
    "DROP OWNED BY postgres",
    "REASSIGN OWNED BY postgres TO etlstore_app",
    "REINDEX TABLE tags",
    "CLUSTER tags",
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION postgres",
    "COPY tags TO '/tmp/etlstore-scratch'",
    "COPY tags FROM PROGRAM 'id'",
    "SELECT pg_read_file('PG_VERSION')",
    "SELECT nextval('pipeline_executions_id_seq')",
)
# Statements PostgreSQL refuses to run inside a transaction block.
_DDL_OUTSIDE_TRANSACTIONS: Final[tuple[LiteralString, ...]] = (
    "CREATE DATABASE scratch",
    "ALTER SYSTEM SET fsync = on",
)
# A column of each of yoyo's tables, for an UPDATE to name.
_YOYO_COLUMN: Final = {
    "_yoyo_migration": "migration_hash",
    "_yoyo_log": "id",
    "_yoyo_version": "version",
    "yoyo_lock": "locked",
}
_YOYO_WRITES: Final[tuple[LiteralString, ...]] = tuple(
    statement
    for table, column in _YOYO_COLUMN.items()
    for statement in (
        f"INSERT INTO {table} DEFAULT VALUES",
        f"UPDATE {table} SET {column} = {column}",
        f"DELETE FROM {table}",
        f"TRUNCATE {table}",
        f"LOCK TABLE {table}",
    )
)


@pytest.fixture
def app_db(migrated_database: str) -> Iterator[psycopg.Connection]:
    """A connection as the application role; whatever it does is rolled back."""
    with psycopg.connect(migrated_database, user=APP_ROLE) as conn:
        yield conn
        conn.rollback()


@pytest.fixture
def owner_db(migrated_database: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(migrated_database) as conn:
        yield conn
        conn.rollback()


def _refused(conn: psycopg.Connection, statement: LiteralString) -> str | None:
    with pytest.raises(psycopg.Error) as raised, conn.transaction():
        conn.execute(statement)
    return raised.value.sqlstate


@pytest.mark.parametrize("statement", _DDL + _YOYO_WRITES)
def test_the_app_role_is_refused_ddl_and_yoyo_tables_with_insufficient_privilege(
    app_db: psycopg.Connection, statement: LiteralString
) -> None:
    assert _refused(app_db, statement) == _INSUFFICIENT_PRIVILEGE


@pytest.mark.parametrize("statement", _DDL_OUTSIDE_TRANSACTIONS)
def test_the_app_role_cannot_create_databases_or_change_the_server(
    migrated_database: str, statement: LiteralString
) -> None:
    with (
        psycopg.connect(migrated_database, user=APP_ROLE, autocommit=True) as conn,
        pytest.raises(psycopg.Error) as raised,
    ):
        conn.execute(statement)
    assert raised.value.sqlstate == _INSUFFICIENT_PRIVILEGE


def test_the_app_role_cannot_create_temporary_tables(app_db: psycopg.Connection) -> None:
    assert _refused(app_db, "CREATE TEMP TABLE scratch (id int)") == _INSUFFICIENT_PRIVILEGE


_TABLE_PRIVILEGES_SQL: Final = """
SELECT c.relname, c.relkind::text, c.relispartition,
       array(SELECT p FROM unnest(%(privileges)s::text[]) AS p
             WHERE has_table_privilege(%(role)s, c.oid, p) ORDER BY p)
FROM pg_class AS c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
"""


def test_the_server_grants_the_app_role_dml_on_application_tables_and_nothing_more(
    owner_db: psycopg.Connection,
) -> None:
    version = owner_db.info.server_version
    privileges = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
    privileges += ["MAINTAIN"] if version >= 170000 else []
    rows = owner_db.execute(
        _TABLE_PRIVILEGES_SQL, {"privileges": privileges, "role": APP_ROLE}
    ).fetchall()
    held = {
        name: granted
        for name, kind, is_partition, granted in rows
        if (granted or kind == "r") and not is_partition
    }
    expected = {
        table: (["INSERT", "SELECT"] if table in APPEND_ONLY else sorted(_DML))
        for table in TABLES - OWNER_ONLY
    }
    expected.update({table: [] for table in (*YOYO_TABLES, *OWNER_ONLY)})
    assert held == expected
    # Partitions are reached through their partitioned table only.
    partitions = {name: granted for name, _, is_partition, granted in rows if is_partition}
    assert partitions
    assert not any(partitions.values())


_ROLE_SQL: Final = """
SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls,
       r.rolcanlogin,
       (SELECT count(*) FROM pg_auth_members AS m WHERE m.member = r.oid),
       has_database_privilege(r.oid, current_database(), 'CREATE'),
       has_database_privilege(r.oid, current_database(), 'CONNECT'),
       has_schema_privilege(r.oid, 'public', 'CREATE'),
       has_schema_privilege(r.oid, 'public', 'USAGE'),
       (SELECT count(*) FROM pg_class WHERE relowner = r.oid)
         + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)
         + (SELECT count(*) FROM pg_type WHERE typowner = r.oid)
         + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)
FROM pg_roles AS r
WHERE r.rolname = %s
"""


def test_the_app_role_logs_in_owns_nothing_and_belongs_to_no_role(
    owner_db: psycopg.Connection,
) -> None:
    row = owner_db.execute(_ROLE_SQL, (APP_ROLE,)).fetchone()
    assert row is not None
    superuser, createrole, createdb, replication, bypassrls, login, memberships = row[:7]
    assert (superuser, createrole, createdb, replication, bypassrls) == (False,) * 5
    assert (login, memberships) == (True, 0)
    create_db, connect, create_schema, usage, owned = row[7:]
    assert (create_db, connect, create_schema, usage, owned) == (False, True, False, True, 0)
