"""``etlstore migrate`` at deploy: checksums, lock timeouts with retry, recovery from kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from etlstore._config import yoyo_url
from etlstore._deploy import (
    APPLICATION_NAME,
    DeployLocked,
    LockRetriesExhausted,
    MigrationsChanged,
    check_migrations,
    deploy_migrations,
)
from etlstore.cli import main
from tests._catalog import APP_ROLE

REPO = Path(__file__).resolve().parents[1]
MIGRATIONS = REPO / "migrations"
BIN = Path(sys.executable).parent

_CHECKSUMS = "SELECT migration_id, sha256 FROM etlstore_deploy.migration_checksums ORDER BY 1"
_APPLIED = "SELECT migration_id FROM _yoyo_migration ORDER BY 1"


def _write(folder: Path, name: str, sql: str, rollback: str = "") -> Path:
    path = folder / f"{name}.sql"
    path.write_text(sql)
    (folder / f"{name}.rollback.sql").write_text(rollback)
    return path


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    _write(
        folder,
        "0001_ledger",
        "CREATE TABLE ledger (id int PRIMARY KEY, note text);\n",
        "DROP TABLE ledger;\n",
    )
    return folder


def _applied(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute(_APPLIED)]


def _columns(dsn: str, table: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
            "ORDER BY attnum",
            (table,),
        )
        return [row[0] for row in rows]


# -- checksums -------------------------------------------------------------------------------------


def test_an_edited_applied_migration_stops_the_deploy_before_anything_runs(
    empty_database: str, migrations: Path
) -> None:
    assert deploy_migrations(empty_database, migrations) == ["0001_ledger"]
    edited = migrations / "0001_ledger.sql"
    edited.write_text("CREATE TABLE ledger (id bigint PRIMARY KEY, note text);\n")
    _write(migrations, "0002_more", "ALTER TABLE ledger ADD COLUMN amount int;\n")

    with pytest.raises(MigrationsChanged) as changed:
        deploy_migrations(empty_database, migrations)

    assert f"{edited}: changed since it was applied" in str(changed.value)
    assert _applied(empty_database) == ["0001_ledger"]
    assert _columns(empty_database, "ledger") == ["id", "note"]
    assert check_migrations(empty_database, migrations).problems == [
        f"{edited}: changed since it was applied"
    ]


def test_an_edited_rollback_and_a_deleted_file_are_named_by_migrate_check(
    empty_database: str,
    migrations: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _write(migrations, "0002_more", "ALTER TABLE ledger ADD COLUMN amount int;\n")
    deploy_migrations(empty_database, migrations)
    (migrations / "0001_ledger.rollback.sql").write_text("DROP TABLE ledger CASCADE;\n")
    (migrations / "0002_more.sql").unlink()
    (migrations / "0002_more.rollback.sql").unlink()
    monkeypatch.setenv("DATABASE_URL", empty_database)

    assert main(["migrate", "--check", "--migrations", str(migrations)]) == 1
    err = capsys.readouterr().err
    assert "0001_ledger.rollback.sql: changed since its migration was applied" in err
    assert f"0002_more: applied, but no such file in {migrations}" in err
    assert main(["migrate", "--migrations", str(migrations)]) == 1
    assert "nothing was applied" in capsys.readouterr().err


def test_a_database_migrated_by_plain_yoyo_gets_its_checksums_on_the_first_deploy(
    empty_database: str, migrations: Path
) -> None:
    yoyo = subprocess.run(
        [str(BIN / "yoyo"), "apply", "--batch", "--no-config-file",
         "--database", yoyo_url(empty_database), str(migrations)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert yoyo.returncode == 0, yoyo.stderr
    assert deploy_migrations(empty_database, migrations) == []
    with psycopg.connect(empty_database) as conn:
        assert [row[0] for row in conn.execute(_CHECKSUMS)] == ["0001_ledger"]
    (migrations / "0001_ledger.sql").write_text("CREATE TABLE ledger (id int);\n")
    with pytest.raises(MigrationsChanged):
        deploy_migrations(empty_database, migrations)


def test_the_app_role_cannot_read_the_checksums(make_database: Callable[[], str]) -> None:
    database = make_database()
    deploy_migrations(database, MIGRATIONS)
    with psycopg.connect(database, user=APP_ROLE) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM etlstore_deploy.migration_checksums")
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM pipelines").fetchone() == (0,)


# -- lock_timeout and retry ------------------------------------------------------------------------


@pytest.fixture
def blocker(empty_database: str, migrations: Path) -> Iterator[psycopg.Connection]:
    """A long transaction holding the weakest lock on ledger: enough to block ALTER TABLE."""
    deploy_migrations(empty_database, migrations)
    _write(migrations, "0002_amount", "ALTER TABLE ledger ADD COLUMN amount int;\n")
    with psycopg.connect(empty_database) as conn:
        conn.execute("LOCK TABLE ledger IN ACCESS SHARE MODE")
        yield conn


def test_ddl_behind_a_long_transaction_retries_without_blocking_the_application(
    empty_database: str, migrations: Path, blocker: psycopg.Connection
) -> None:
    retries: list[str] = []
    outcome: list[object] = []

    def deploy() -> None:
        try:
            outcome.append(
                deploy_migrations(
                    empty_database,
                    migrations,
                    lock_timeout="100ms",
                    lock_retries=100,
                    retry_delay_s=0.02,
                    notify=retries.append,
                )
            )
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            outcome.append(exc)

    thread = threading.Thread(target=deploy)
    thread.start()
    # The application keeps reading while the DDL waits: each read may queue behind the ALTER's
    # lock request, but only until that request times out, well within the reader's own timeout.
    with psycopg.connect(empty_database, autocommit=True) as app:
        app.execute("SET lock_timeout = '3s'")
        reads = 0
        while len(retries) < 3 and thread.is_alive():
            assert app.execute("SELECT count(*) FROM ledger").fetchone() == (0,)
            reads += 1
    blocker.rollback()  # the long transaction ends
    thread.join()

    assert outcome == [["0002_amount"]]
    assert reads > 0
    assert "0002_amount: lock not available (attempt 1 of 101)" in retries[0]
    assert _columns(empty_database, "ledger") == ["id", "note", "amount"]


def test_ddl_fails_clearly_when_the_lock_never_comes(
    empty_database: str, migrations: Path, blocker: psycopg.Connection
) -> None:
    retries: list[str] = []
    with pytest.raises(LockRetriesExhausted, match=r"0002_amount: could not take its locks in 3"):
        deploy_migrations(
            empty_database,
            migrations,
            lock_timeout="50ms",
            lock_retries=2,
            retry_delay_s=0.01,
            notify=retries.append,
        )
    assert len(retries) == 2
    blocker.rollback()
    assert _applied(empty_database) == ["0001_ledger"]
    assert _columns(empty_database, "ledger") == ["id", "note"]
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT count(*) FROM yoyo_lock").fetchone() == (0,)


def test_a_second_deploy_waits_for_the_running_one_then_names_it(
    empty_database: str, migrations: Path
) -> None:
    with psycopg.connect(empty_database, autocommit=True) as running:
        running.execute("SELECT pg_advisory_lock(hashtextextended('etlstore migrate', 0))")
        pid = running.info.backend_pid
        with pytest.raises(DeployLocked, match=rf"another etlstore migrate .*backend {pid}"):
            deploy_migrations(empty_database, migrations, wait_s=0.3)
    assert deploy_migrations(empty_database, migrations) == ["0001_ledger"]


# -- kill -9 mid-apply -----------------------------------------------------------------------------


def _migrate(dsn: str, migrations: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "etlstore"), "migrate", "--migrations", str(migrations), *args],
        env={**os.environ, "DATABASE_URL": dsn},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _deploy_waiting_on_a_lock(conn: psycopg.Connection, other_than: int = 0) -> int:
    """The backend pid of a deploy's session blocked on a lock (not ``other_than``)."""
    for _ in range(400):
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s AND wait_event_type = 'Lock' AND pid <> %s",
            (APPLICATION_NAME, other_than),
        ).fetchone()
        if row:
            return int(row[0])
        time.sleep(0.025)
    raise AssertionError("the deploy never waited on the lock")


def test_a_deploy_killed_mid_migration_is_recovered_by_an_idempotent_rerun(
    empty_database: str, migrations: Path
) -> None:
    deploy_migrations(empty_database, migrations)
    # Non-transactional: the first statement is committed before the second waits on a lock.
    _write(
        migrations,
        "0002_audit",
        "-- transactional: false\n"
        "CREATE TABLE IF NOT EXISTS ledger_audit (id int PRIMARY KEY);\n"
        "ALTER TABLE ledger ADD COLUMN IF NOT EXISTS amount int;\n",
        "ALTER TABLE ledger DROP COLUMN IF EXISTS amount;\nDROP TABLE IF EXISTS ledger_audit;\n",
    )
    with (
        psycopg.connect(empty_database, autocommit=True) as watcher,
        psycopg.connect(empty_database) as blocker,
    ):
        blocker.execute("LOCK TABLE ledger IN ACCESS SHARE MODE")
        killed = _migrate(empty_database, migrations, "--lock-timeout", "60s")
        orphan = _deploy_waiting_on_a_lock(watcher)
        assert _columns(empty_database, "ledger_audit") == ["id"], "first statement committed"
        killed.send_signal(signal.SIGKILL)
        killed.communicate()
        lock_row = watcher.execute("SELECT pid FROM yoyo_lock").fetchall()
        assert lock_row == [(killed.pid,)]

        refused = _migrate(empty_database, migrations)
        _, refused_err = refused.communicate(timeout=60)
        assert refused.returncode == 1
        assert f"taken by process {killed.pid}" in refused_err
        assert f"its server sessions [{orphan}] still run" in refused_err
        assert "--break-stale-lock" in refused_err

        rerun = _migrate(empty_database, migrations, "--break-stale-lock", "--lock-timeout", "60s")
        _deploy_waiting_on_a_lock(watcher, other_than=orphan)  # the orphan is gone, rerun waits
        blocker.rollback()
        out, err = rerun.communicate(timeout=60)

    assert rerun.returncode == 0, err
    assert "terminated 1 server session(s) left by the killed deploy" in err
    assert f"broke the stale yoyo lock of process {killed.pid}" in err
    assert "0002_audit" in out
    assert _applied(empty_database) == ["0001_ledger", "0002_audit"]
    assert _columns(empty_database, "ledger") == ["id", "note", "amount"]
    assert _columns(empty_database, "ledger_audit") == ["id"]
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT count(*) FROM yoyo_lock").fetchone() == (0,)
