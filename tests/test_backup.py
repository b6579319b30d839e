"""Backups: ``etlstore backup`` / ``restore`` round trips, and point-in-time recovery from WAL."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from etlstore._backup import BackupError, backup_database, pg_bin_dir, restore_database
from etlstore._config import with_database
from etlstore._embedded import EmbeddedPostgres, _free_port, _run_as
from etlstore._migrations import apply_migrations
from etlstore.cli import main
from tests._catalog import schema_snapshot

REPO = Path(__file__).resolve().parents[1]
MIGRATIONS = REPO / "migrations"

# Rows in several tables: uuid and identity keys, enums, jsonb (nested, unicode, null), arrays,
# NULLs, foreign keys; plus a table of the test's own for array and numeric columns.
_SEED = """
CREATE TABLE backup_probe (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    labels text[] NOT NULL,
    scores numeric(6, 2)[],
    note text
);
INSERT INTO backup_probe (labels, scores, note) VALUES
    ('{a,"b c","quote\\"d"}', '{1.50,NULL,-2.25}', 'émoji ✓'),
    ('{}', NULL, NULL);
INSERT INTO users (id, username, email, password_hash) VALUES
    ('00000000-0000-0000-0000-000000000001', 'ada', 'ada@example.com', 'x');
INSERT INTO plugins (name, plugin_type, version, namespace, settings_schema)
    SELECT 'csv-' || i, 'extractor', '1.0.' || i, 'tap_csv',
           jsonb_build_object('n', i, 'nested', '[1, {"k": null}]'::jsonb)
    FROM generate_series(1, 3) AS i;
INSERT INTO pipelines (name, environment_variables, schedule_expression)
    SELECT 'p' || i, jsonb_build_object('REGION', 'eu', 'I', i::text), '0 2 * * *'
    FROM generate_series(1, 5) AS i;
INSERT INTO pipeline_executions (pipeline_id, status, triggered_by, triggered_by_user_id,
                                 idempotency_key, context, started_at, finished_at)
    SELECT p.id, 'succeeded', 'user', '00000000-0000-0000-0000-000000000001', 'k' || p.name,
           '{"rows": [1, 2, 3], "ok": true, "text": "ünïcode"}', now() - interval '1 hour', now()
    FROM pipelines AS p;
INSERT INTO events (event_type, data, task_context, idempotency_key)
    VALUES ('file.arrived', '{"path": "/in/x.csv", "size": 12}', NULL, 'e1'),
           ('file.arrived', '[]', '{"retry": 1}', NULL);
INSERT INTO audit_log (actor, action, entity_type, entity_id, after)
    VALUES ('system', 'create', 'pipeline', 'p1', '{"name": "p1"}');
"""

_TABLES = """
SELECT c.relname, coalesce((
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord)
    FROM pg_index AS x
    CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = k.attnum
    WHERE x.indrelid = c.oid AND x.indisprimary), '1')
FROM pg_class AS c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
    AND NOT c.relispartition
ORDER BY 1
"""
_SEQUENCES = """
SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1
"""


def _table_rows(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every row of every table in public (yoyo's included), as text, ordered by primary key."""
    rows: dict[str, list[str]] = {}
    for table, key in conn.execute(_TABLES).fetchall():
        query = sql.SQL("SELECT t::text FROM {} AS t ORDER BY {}").format(
            sql.Identifier(table), sql.SQL(key)
        )
        rows[table] = [row[0] for row in conn.execute(query)]
    return rows


def _state(dsn: str) -> tuple[object, ...]:
    with psycopg.connect(dsn) as conn:
        return schema_snapshot(conn), _table_rows(conn), conn.execute(_SEQUENCES).fetchall()


@pytest.fixture
def seeded_database(make_database: Callable[[], str]) -> str:
    dsn = make_database()
    apply_migrations(dsn, MIGRATIONS)
    with psycopg.connect(dsn) as conn:
        conn.execute(_SEED)
    return dsn


def test_backup_then_restore_into_a_fresh_database_gives_identical_schema_and_rows(
    seeded_database: str,
    make_database: Callable[[], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dump = tmp_path / "etl.dump"
    target = make_database()

    monkeypatch.setenv("DATABASE_URL", seeded_database)
    assert main(["backup", str(dump)]) == 0
    monkeypatch.setenv("DATABASE_URL", target)
    assert main(["restore", str(dump)]) == 0

    source_state, target_state = _state(seeded_database), _state(target)
    rows = target_state[1]
    assert isinstance(rows, dict)
    assert len(rows["pipeline_executions"]) == 5
    assert len(rows["backup_probe"]) == 2
    assert rows["_yoyo_migration"], "yoyo's record of applied migrations is restored too"
    assert target_state == source_state
    # The identity sequences continue where the source left off.
    with psycopg.connect(target) as conn:
        next_id = conn.execute("INSERT INTO backup_probe (labels) VALUES ('{}') RETURNING id")
        assert next_id.fetchone() == (3,)


def test_restore_refuses_a_database_that_is_not_empty_unless_clean(
    seeded_database: str, tmp_path: Path
) -> None:
    dump = tmp_path / "etl.dump"
    backup_database(seeded_database, dump)
    before = _state(seeded_database)
    with psycopg.connect(seeded_database, autocommit=True) as conn:
        conn.execute("DELETE FROM events")

    with pytest.raises(BackupError, match=r"not empty.*--clean"):
        restore_database(seeded_database, dump)

    restore_database(seeded_database, dump, clean=True)
    assert _state(seeded_database) == before


def test_restore_names_a_missing_file(
    empty_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database)
    assert main(["restore", str(tmp_path / "nope.dump")]) == 1
    assert f"no backup file at {tmp_path / 'nope.dump'}" in capsys.readouterr().err


def test_the_password_travels_in_the_environment_never_in_arguments_or_errors(
    pg_server: str, make_database: Callable[[], str], tmp_path: Path
) -> None:
    """A wrapper around the real pg_dump records what it was given."""
    canary = "canary-pw-7f3e"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS backup_canary")
        conn.execute(
            sql.SQL("CREATE ROLE backup_canary LOGIN SUPERUSER PASSWORD {}").format(
                sql.Literal(canary)
            )
        )
    database = make_database()
    host_port_db = database.split("@", 1)[1]
    url = f"postgresql://backup_canary:{canary}@{host_port_db}"
    wrapper = tmp_path / "bin"
    wrapper.mkdir()
    seen = tmp_path / "seen.txt"
    (wrapper / "pg_dump").write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {seen}\n'
        f'echo "PGPASSWORD=$PGPASSWORD" >> {seen}\n'
        f'exec {pg_bin_dir() / "pg_dump"} "$@"\n'
    )
    (wrapper / "pg_dump").chmod(0o755)
    try:
        backup_database(url, tmp_path / "ok.dump", bin_dir=wrapper)
        arguments, _, environment = seen.read_text().rpartition("PGPASSWORD=")
        assert canary not in arguments
        assert environment.strip() == canary

        with pytest.raises(BackupError) as failed:
            backup_database(with_database(url, "no_such_db"), tmp_path / "x")
        assert "no_such_db" in str(failed.value)
        assert canary not in str(failed.value)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute("DROP ROLE backup_canary")


# -- point-in-time recovery ----------------------------------------------------------------------


def _give_to_server_user(path: Path) -> None:
    """As root the server runs as another user: the files it reads and writes must be its own."""
    user = _run_as()
    if user is None:
        return
    for entry in [path, *path.rglob("*")]:
        shutil.chown(entry, user, user)


def _wait_until_archived(conn: psycopg.Connection, wal_file: str) -> None:
    for _ in range(200):
        row = conn.execute("SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver")
        archived, failed = row.fetchone() or (None, None)
        if archived is not None and archived >= wal_file:
            return
        assert failed is None, f"archive_command failed on {failed}"
        time.sleep(0.05)
    raise AssertionError(f"{wal_file} was not archived")


@pytest.mark.parametrize("target_kind", ["time", "restore point"])
def test_point_in_time_recovery_keeps_exactly_the_rows_committed_before_the_target(
    embedded_test_server: str, tmp_path: Path, target_kind: str
) -> None:
    archive, base, restored = tmp_path / "archive", tmp_path / "base", tmp_path / "restored"
    for folder in (archive, base):
        folder.mkdir(mode=stat.S_IRWXU)
        _give_to_server_user(folder)
    primary = EmbeddedPostgres(
        tmp_path / "primary",
        database="pitr",
        settings={
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_command": f"test ! -f {archive}/%f && cp %p {archive}/%f",
        },
    )
    dsn = primary.start()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE ledger (id int PRIMARY KEY, batch text NOT NULL)")
            conn.execute(
                "INSERT INTO ledger SELECT i, 'before base backup' FROM generate_series(1, 10) AS i"
            )
            subprocess.run(
                [str(pg_bin_dir() / "pg_basebackup"), "--pgdata", str(base),
                 "--dbname", dsn, "--wal-method=stream", "--checkpoint=fast"],
                check=True, capture_output=True, user=_run_as(),
            )  # fmt: skip
            conn.execute("INSERT INTO ledger SELECT i, 'kept' FROM generate_series(11, 20) AS i")
            # The target: the server's clock after that commit, before the next transaction begins.
            target: datetime = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
            conn.execute("SELECT pg_create_restore_point('before-lost')")
            conn.execute("INSERT INTO ledger SELECT i, 'lost' FROM generate_series(21, 30) AS i")
            last_wal = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]  # type: ignore[index]
            _wait_until_archived(conn, last_wal)
    finally:
        primary.stop()

    # Restore: the base backup as a new data dir, recovering from the archive up to the target.
    shutil.copytree(base, restored)
    restored.chmod(stat.S_IRWXU)
    (restored / "recovery.signal").touch()
    _give_to_server_user(restored)
    recovered = EmbeddedPostgres(
        restored,
        database="pitr",
        settings={
            "restore_command": f"cp {archive}/%f %p",
            **(
                {"recovery_target_time": target.isoformat()}
                if target_kind == "time"
                else {"recovery_target_name": "before-lost"}
            ),
            "recovery_target_action": "promote",
        },
    )
    # A port of its own: the copied configuration still names the primary's.
    recovered_dsn = recovered.start(port=_free_port())
    try:
        with psycopg.connect(recovered_dsn, autocommit=True) as conn:
            for _ in range(200):
                if conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,):
                    break
                time.sleep(0.05)
            batches = conn.execute(
                "SELECT batch, count(*), min(id), max(id) FROM ledger GROUP BY 1 ORDER BY 3"
            ).fetchall()
    finally:
        recovered.stop()
    assert batches == [("before base backup", 10, 1, 10), ("kept", 10, 11, 20)]
    assert os.listdir(archive), "nothing was archived"
