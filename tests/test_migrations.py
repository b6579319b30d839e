"""The migrations as yoyo applies them: apply, roll back, lint, run concurrently, deploy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from etlstore._config import yoyo_url
from etlstore._embedded import EmbeddedPostgres
from etlstore._migrations import apply_migrations, rollback_migrations
from tests._catalog import APP_ROLE, project_objects, role_is_used_elsewhere, schema_snapshot

REPO = Path(__file__).resolve().parents[1]
MIGRATIONS = REPO / "migrations"
BIN = Path(sys.executable).parent
MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z][a-z0-9_]*$")


def _role_exists(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", (APP_ROLE,))
    return bool(row.fetchone() == (True,))


def _forward_migrations() -> list[Path]:
    return sorted(p for p in MIGRATIONS.glob("*.sql") if not p.name.endswith(".rollback.sql"))


def test_every_migration_is_numbered_in_sequence_and_has_a_rollback() -> None:
    forward = _forward_migrations()
    assert forward, "no migrations found"
    numbers = []
    for path in forward:
        match = MIGRATION_NAME.match(path.stem)
        assert match, f"{path.name}: expected NNNN_name.sql"
        numbers.append(int(match.group(1)))
        assert path.with_suffix(".rollback.sql").is_file(), f"{path.name} has no rollback"
    assert numbers == list(range(1, len(forward) + 1))
    rollbacks = {p.name.removesuffix(".rollback.sql") for p in MIGRATIONS.glob("*.rollback.sql")}
    assert rollbacks == {p.stem for p in forward}, "a rollback without its migration"


def test_all_migrations_apply_to_an_empty_database(empty_database: str) -> None:
    applied = apply_migrations(empty_database, MIGRATIONS)
    assert applied == [p.stem for p in _forward_migrations()]
    with psycopg.connect(empty_database) as conn:
        recorded = conn.execute("SELECT migration_id FROM _yoyo_migration ORDER BY 1").fetchall()
    assert [r[0] for r in recorded] == applied


def test_rollback_all_leaves_no_project_object_behind(empty_database: str) -> None:
    apply_migrations(empty_database, MIGRATIONS)
    with psycopg.connect(empty_database) as conn:
        assert project_objects(conn), "the migrations created nothing"

    rolled_back = rollback_migrations(empty_database, MIGRATIONS)

    assert rolled_back == [p.stem for p in reversed(_forward_migrations())]
    with psycopg.connect(empty_database) as conn:
        assert project_objects(conn) == []
        # Roles are cluster-wide: the role stays only while another database still grants it.
        if _role_exists(conn):
            assert role_is_used_elsewhere(conn), f"{APP_ROLE} left behind, used by nothing"


@pytest.fixture(scope="module")
def lone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A cluster of its own: no other database can hold on to the cluster-wide app role."""
    if os.environ.get("DATABASE_URL"):
        pytest.skip("DATABASE_URL is set: this test needs an embedded cluster of its own")
    server = EmbeddedPostgres(
        tmp_path_factory.mktemp("lone") / "data",
        database="etlstore",
        settings={"fsync": "off", "synchronous_commit": "off"},
    )
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()


def test_rollback_drops_the_app_role_when_no_other_database_uses_it(lone_cluster: str) -> None:
    apply_migrations(lone_cluster, MIGRATIONS)
    with psycopg.connect(lone_cluster) as conn:
        assert _role_exists(conn)
    rollback_migrations(lone_cluster, MIGRATIONS)
    with psycopg.connect(lone_cluster) as conn:
        assert not _role_exists(conn)


def test_rollback_keeps_the_app_role_while_another_database_uses_it(
    make_database: Callable[[], str],
) -> None:
    other, this = make_database(), make_database()
    apply_migrations(other, MIGRATIONS)
    apply_migrations(this, MIGRATIONS)
    rollback_migrations(this, MIGRATIONS)
    with psycopg.connect(this) as conn:
        assert _role_exists(conn)
        assert project_objects(conn) == []
    with psycopg.connect(other, user=APP_ROLE) as conn:
        assert conn.execute("SELECT count(*) FROM pipelines").fetchone() == (0,)


def test_apply_rollback_apply_yields_an_identical_catalog(empty_database: str) -> None:
    apply_migrations(empty_database, MIGRATIONS)
    with psycopg.connect(empty_database) as conn:
        first = schema_snapshot(conn)
    rollback_migrations(empty_database, MIGRATIONS)
    apply_migrations(empty_database, MIGRATIONS)
    with psycopg.connect(empty_database) as conn:
        second = schema_snapshot(conn)
    assert len(first) > 100, "the snapshot misses most of the schema"
    assert first == second


def test_squawk_passes_on_every_migration() -> None:
    config = tomllib.loads((REPO / ".squawk.toml").read_text())
    assert "excluded_paths" not in config, "squawk must lint every migration"
    assert config.get("assume_in_transaction") is True, "yoyo runs migrations in transactions"
    files = sorted(str(p.relative_to(REPO)) for p in MIGRATIONS.glob("*.sql"))
    result = subprocess.run(
        [str(BIN / "squawk"), "--config", ".squawk.toml", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"in {len(files)} files" in result.stdout, result.stdout


def _yoyo_apply_from_repo_root(database_url: str) -> subprocess.CompletedProcess[str]:
    """What a deploy runs: ``yoyo apply --batch`` from the repo root, reading yoyo.ini."""
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [str(BIN / "yoyo"), "apply", "--batch"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


# On a fresh database both processes race to create yoyo's own tables: yoyo ignores the loser's
# CREATE TABLE error, the primary key of yoyo_lock's single row makes the loser wait (polling, up
# to 10 s) and yoyo re-checks its internal schema version under that lock. Two rounds, because one
# interleaving proves little.
@pytest.mark.parametrize("round_", [1, 2])
def test_two_yoyo_apply_processes_at_once_apply_each_migration_once(
    make_database: Callable[[], str], round_: int
) -> None:
    database = make_database()
    url = yoyo_url(database)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_yoyo_apply_from_repo_root, [url, url]))

    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Traceback" not in result.stderr, result.stderr
    with psycopg.connect(database) as conn:
        recorded = conn.execute(
            "SELECT migration_id, count(*) FROM _yoyo_migration GROUP BY 1 ORDER BY 1"
        ).fetchall()
        log = conn.execute("SELECT count(*) FROM _yoyo_log WHERE operation = 'apply'").fetchone()
    forward = [p.stem for p in _forward_migrations()]
    assert recorded == [(name, 1) for name in forward]
    assert log == (len(forward),), "a migration was applied twice"
    reference = make_database()
    apply_migrations(reference, MIGRATIONS)
    with psycopg.connect(database) as conn, psycopg.connect(reference) as ref:
        assert schema_snapshot(conn) == schema_snapshot(ref)


def test_yoyo_apply_from_the_repo_root_does_nothing_when_up_to_date(empty_database: str) -> None:
    url = yoyo_url(empty_database)
    first = _yoyo_apply_from_repo_root(url)
    again = _yoyo_apply_from_repo_root(url)
    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    with psycopg.connect(empty_database) as conn:
        count = conn.execute("SELECT count(*) FROM _yoyo_migration").fetchone()
    assert count == (len(_forward_migrations()),)
