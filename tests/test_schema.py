"""The schema's own integrity: catalog-wide rules, constraints, triggers and the app role."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID

import psycopg
import pytest
from psycopg import errors

from tests._catalog import APP_ROLE, uncovered_foreign_keys

TABLES = {
    "users", "roles", "permissions", "user_roles", "role_permissions",
    "plugins", "dataclasses",
    "pipelines", "pipeline_steps", "jobs", "tags", "job_tags", "components",
    "component_dependencies", "config_versions",
    "pipeline_executions", "step_executions", "job_executions", "component_metrics", "events",
    "audit_log",
    "pipeline_execution_idempotency_keys", "event_idempotency_keys", "partition_policies",
}  # fmt: skip
# Maintenance runs as the owner; the application neither reads nor changes how tables are kept.
OWNER_ONLY = {"partition_policies"}
# The application adds rows and reads them, never changes or removes them (the owner does).
APPEND_ONLY = {
    "config_versions", "audit_log", "pipeline_execution_idempotency_keys", "event_idempotency_keys",
}  # fmt: skip
YOYO_TABLES = ("_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock")


@pytest.fixture
def db(migrated_database: str) -> Iterator[psycopg.Connection]:
    """A connection to the migrated database whose transaction is rolled back afterwards."""
    with psycopg.connect(migrated_database) as conn:
        yield conn
        conn.rollback()


@pytest.fixture
def app_db(migrated_database: str) -> Iterator[psycopg.Connection]:
    """Like ``db``, logged in as the application role."""
    with psycopg.connect(migrated_database, user=APP_ROLE) as conn:
        yield conn
        conn.rollback()


def _one(conn: psycopg.Connection, query: str, params: tuple[object, ...] = ()) -> object:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " AND relkind IN ('r', 'p') AND NOT relispartition AND relname !~ '^_*yoyo'"
    )
    return {r[0] for r in rows}


def test_the_schema_has_exactly_the_domain_tables(db: psycopg.Connection) -> None:
    assert _tables(db) == TABLES


def test_every_foreign_key_leads_an_index(db: psycopg.Connection) -> None:
    assert uncovered_foreign_keys(db) == []


def test_an_unindexed_foreign_key_is_reported(db: psycopg.Connection) -> None:
    db.execute("CREATE TABLE scratch_child (id int PRIMARY KEY, job_id uuid REFERENCES jobs)")
    assert uncovered_foreign_keys(db) == ["scratch_child.scratch_child_job_id_fkey"]


def test_every_table_has_a_comment(db: psycopg.Connection) -> None:
    rows = db.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " AND relkind IN ('r', 'p') AND NOT relispartition AND relname !~ '^_*yoyo'"
        " AND coalesce(obj_description(oid, 'pg_class'), '') = ''"
    )
    assert rows.fetchall() == []


def test_no_timestamp_without_time_zone_and_no_json(db: psycopg.Connection) -> None:
    rows = db.execute(
        "SELECT c.relname || '.' || a.attname FROM pg_attribute AS a"
        " JOIN pg_class AS c ON c.oid = a.attrelid"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relname !~ '^_*yoyo'"
        " AND a.attnum > 0 AND a.atttypid IN ('timestamp'::regtype, 'json'::regtype)"
    )
    assert rows.fetchall() == []


def test_every_table_with_updated_at_has_the_trigger(db: psycopg.Connection) -> None:
    rows = db.execute(
        "SELECT c.relname FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'"
        " AND a.attname = 'updated_at' AND NOT EXISTS ("
        "   SELECT FROM pg_trigger AS t WHERE t.tgrelid = c.oid"
        "   AND t.tgfoid = 'set_updated_at'::regproc)"
    )
    assert rows.fetchall() == []


def test_update_sets_updated_at(db: psycopg.Connection) -> None:
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    tag_id = _one(
        db, "INSERT INTO tags (name, updated_at) VALUES ('t', %s) RETURNING id", (long_ago,)
    )
    db.execute("UPDATE tags SET name = 'renamed' WHERE id = %s", (tag_id,))
    assert _one(db, "SELECT updated_at = now() FROM tags WHERE id = %s", (tag_id,)) is True


def _violation(
    conn: psycopg.Connection, error: type[psycopg.Error], query: str, params: tuple[object, ...]
) -> str | None:
    """Run a statement expected to fail; return the constraint it names."""
    with pytest.raises(error) as raised, conn.transaction():
        conn.execute(query, params)
    return raised.value.diag.constraint_name


def test_usernames_are_unique_regardless_of_case(db: psycopg.Connection) -> None:
    insert = "INSERT INTO users (username, email, password_hash) VALUES (%s, %s, 'x')"
    db.execute(insert, ("Alice", "alice@example.com"))
    name = _violation(db, errors.UniqueViolation, insert, ("aLICE", "other@example.com"))
    assert name == "users_username_lower_key"
    name = _violation(db, errors.UniqueViolation, insert, ("bob", "ALICE@example.com"))
    assert name == "users_email_lower_key"


@pytest.mark.parametrize(
    ("column", "value", "constraint"),
    [
        ("max_concurrent_executions", 0, "pipelines_max_concurrent_executions_check"),
        ("retry_attempts", -1, "pipelines_retry_attempts_check"),
        ("timeout_seconds", 0, "pipelines_timeout_seconds_check"),
    ],
)
def test_pipeline_limits_are_checked(
    db: psycopg.Connection, column: str, value: int, constraint: str
) -> None:
    query = f"INSERT INTO pipelines (name, {column}) VALUES ('p', %s)"
    assert _violation(db, errors.CheckViolation, query, (value,)) == constraint


def _pipeline(conn: psycopg.Connection) -> UUID:
    pipeline_id = _one(conn, "INSERT INTO pipelines (name) VALUES ('p') RETURNING id")
    assert isinstance(pipeline_id, UUID)
    return pipeline_id


def test_an_execution_cannot_finish_before_it_started(db: psycopg.Connection) -> None:
    name = _violation(
        db,
        errors.CheckViolation,
        "INSERT INTO pipeline_executions (pipeline_id, triggered_by, status, started_at,"
        " finished_at) VALUES (%s, 'api', 'failed', now(), now() - interval '1 second')",
        (_pipeline(db),),
    )
    assert name == "pipeline_executions_finished_after_started_check"


def test_an_idempotency_key_queues_a_pipeline_once(db: psycopg.Connection) -> None:
    insert = (
        "INSERT INTO pipeline_executions (pipeline_id, triggered_by, idempotency_key)"
        " VALUES (%s, 'api', 'k1')"
    )
    pipeline_id = _pipeline(db)
    db.execute(insert, (pipeline_id,))
    name = _violation(db, errors.UniqueViolation, insert, (pipeline_id,))
    assert name == "pipeline_executions_idempotency_key_key"


def test_steps_have_unique_positions_pin_their_plugin_and_go_with_their_pipeline(
    db: psycopg.Connection,
) -> None:
    plugin_id = _one(
        db,
        "INSERT INTO plugins (name, plugin_type, version, namespace)"
        " VALUES ('tap', 'extractor', '1', 'tap') RETURNING id",
    )
    insert = "INSERT INTO pipeline_steps (pipeline_id, position, plugin_id) VALUES (%s, 1, %s)"
    pipeline_id = _pipeline(db)
    db.execute(insert, (pipeline_id, plugin_id))
    name = _violation(db, errors.UniqueViolation, insert, (pipeline_id, plugin_id))
    assert name == "pipeline_steps_pipeline_id_position_key"
    name = _violation(
        db, errors.RestrictViolation, "DELETE FROM plugins WHERE id = %s", (plugin_id,)
    )
    assert name == "pipeline_steps_plugin_id_fkey"
    db.execute("DELETE FROM pipelines WHERE id = %s", (pipeline_id,))
    assert _one(db, "SELECT count(*) FROM pipeline_steps WHERE plugin_id = %s", (plugin_id,)) == 0


def _components(conn: psycopg.Connection, job: str, *names: str) -> tuple[UUID, list[UUID]]:
    job_id = _one(conn, "INSERT INTO jobs (name) VALUES (%s) RETURNING id", (job,))
    assert isinstance(job_id, UUID)
    ids = []
    for name in names:
        component_id = _one(
            conn,
            "INSERT INTO components (job_id, name, component_type)"
            " VALUES (%s, %s, 'transformer') RETURNING id",
            (job_id, name),
        )
        assert isinstance(component_id, UUID)
        ids.append(component_id)
    return job_id, ids


_EDGE = (
    "INSERT INTO component_dependencies (job_id, component_id, depends_on_id) VALUES (%s, %s, %s)"
)


def test_a_component_cannot_depend_on_itself(db: psycopg.Connection) -> None:
    job_id, (a,) = _components(db, "j", "a")
    name = _violation(db, errors.CheckViolation, _EDGE, (job_id, a, a))
    assert name == "component_dependencies_no_self_dependency"


def test_a_dependency_cannot_cross_jobs(db: psycopg.Connection) -> None:
    job_id, (a,) = _components(db, "j1", "a")
    _, (b,) = _components(db, "j2", "b")
    name = _violation(db, errors.ForeignKeyViolation, _EDGE, (job_id, a, b))
    assert name == "component_dependencies_depends_on_fkey"


def test_a_dependency_that_closes_a_cycle_is_rejected(db: psycopg.Connection) -> None:
    job_id, (a, b, c) = _components(db, "j", "a", "b", "c")
    db.execute(_EDGE, (job_id, b, a))
    db.execute(_EDGE, (job_id, c, b))
    name = _violation(db, errors.CheckViolation, _EDGE, (job_id, a, c))
    assert name == "component_dependencies_no_cycle"
    # A diamond is not a cycle.
    db.execute(_EDGE, (job_id, c, a))


def test_a_cycle_inside_one_multi_row_insert_is_rejected(db: psycopg.Connection) -> None:
    job_id, (a, b) = _components(db, "j", "a", "b")
    name = _violation(
        db,
        errors.CheckViolation,
        "INSERT INTO component_dependencies (job_id, component_id, depends_on_id)"
        " VALUES (%s, %s, %s), (%s, %s, %s)",
        (job_id, a, b, job_id, b, a),
    )
    assert name == "component_dependencies_no_cycle"


def test_config_versions_are_numbered_once_and_immutable(db: psycopg.Connection) -> None:
    insert = (
        "INSERT INTO config_versions (entity_type, entity_id, version, configuration, actor)"
        " VALUES ('pipeline', %s, 1, '{}', 'system')"
    )
    pipeline_id = _pipeline(db)
    db.execute(insert, (pipeline_id,))
    name = _violation(db, errors.UniqueViolation, insert, (pipeline_id,))
    assert name == "config_versions_entity_version_key"
    with pytest.raises(errors.ObjectNotInPrerequisiteState), db.transaction():
        db.execute(
            "UPDATE config_versions SET actor = 'someone' WHERE entity_id = %s", (pipeline_id,)
        )


def test_the_app_role_can_read_and_write_application_rows(app_db: psycopg.Connection) -> None:
    tag_id = _one(app_db, "INSERT INTO tags (name) VALUES ('app') RETURNING id")
    app_db.execute("UPDATE tags SET name = 'app2' WHERE id = %s", (tag_id,))
    assert _one(app_db, "SELECT name FROM tags WHERE id = %s", (tag_id,)) == "app2"
    app_db.execute("DELETE FROM tags WHERE id = %s", (tag_id,))
    pipeline_id = _one(app_db, "INSERT INTO pipelines (name) VALUES ('p') RETURNING id")
    execution_id = _one(
        app_db,
        "INSERT INTO pipeline_executions (pipeline_id, triggered_by)"
        " VALUES (%s, 'api') RETURNING id",
        (pipeline_id,),
    )
    assert isinstance(execution_id, int)


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE scratch (id int)",
        "CREATE SCHEMA scratch",
        "CREATE INDEX scratch_idx ON tags (created_at)",
        "ALTER TABLE tags ADD COLUMN scratch int",
        "DROP TABLE tags",
        "TRUNCATE tags",
        "CREATE FUNCTION scratch() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE TYPE scratch AS ENUM ('a')",
        "UPDATE audit_log SET actor = 'x'",
        "DELETE FROM config_versions",
        *(f"SELECT * FROM {table}" for table in YOYO_TABLES),
        "DELETE FROM yoyo_lock",
    ],
)
def test_the_app_role_cannot_change_the_schema_or_read_yoyo(
    app_db: psycopg.Connection, statement: str
) -> None:
    with pytest.raises(errors.InsufficientPrivilege), app_db.transaction():
        app_db.execute(statement)


def test_the_app_role_holds_dml_on_every_application_table_and_nothing_more(
    db: psycopg.Connection,
) -> None:
    rows = db.execute(
        "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type)"
        " FROM information_schema.role_table_grants WHERE grantee = %s GROUP BY 1",
        (APP_ROLE,),
    )
    grants: dict[str, str] = dict(rows.fetchall())
    assert set(grants) == TABLES - OWNER_ONLY
    for table, privileges in grants.items():
        expected = "INSERT,SELECT" if table in APPEND_ONLY else "DELETE,INSERT,SELECT,UPDATE"
        assert privileges == expected, table
    assert _one(db, "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (APP_ROLE,)) is True
