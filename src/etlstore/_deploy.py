"""``etlstore migrate``: yoyo's apply with the guards a production deploy needs.

- Checksums. yoyo identifies an applied migration by a hash of its *id* only, so an edited file
  is silently ignored. Here the sha256 of each migration file and of its rollback is recorded in
  ``etlstore_deploy.migration_checksums`` before the migration runs; a deploy whose applied
  migrations no longer match their files stops before applying anything, naming the files.
  Databases migrated before (by plain ``yoyo apply``) get their checksums recorded on first use.
- Lock timeouts. Every connection of the deploy runs with ``lock_timeout`` (5 s by default), so
  DDL waiting behind a long transaction gives up instead of blocking every query queued behind
  it; a migration that fails with lock_not_available (55P03) is rolled back and retried with a
  growing pause, and the deploy fails clearly when the retries run out.
- A deploy lock that dies with its process. yoyo's own lock is a row in ``yoyo_lock`` that a
  killed deploy leaves behind. The deploy also holds a session advisory lock for its whole run,
  which PostgreSQL releases when the deploy's connection goes away: a ``yoyo_lock`` row with no
  advisory lock behind it, whose pid is not alive on this host, is stale and may be broken.

The bookkeeping lives in a schema of its own, so that the application schema (``public``), the
generated models and the application role's grants never see it.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, LiteralString
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.errors import LockNotAvailable
from yoyo import get_backend, read_migrations

from etlstore._config import asyncpg_dsn, yoyo_url
from etlstore._migrations import default_migrations_dir

__all__ = [
    "APPLICATION_NAME",
    "DeployError",
    "DeployLocked",
    "LockRetriesExhausted",
    "MigrationCheck",
    "MigrationsChanged",
    "StaleLock",
    "check_migrations",
    "deploy_migrations",
]

APPLICATION_NAME = "etlstore migrate"

# CREATE SCHEMA checks the CREATE privilege on the database even when the schema exists: only the
# first deploy should need it.
_SCHEMA_EXISTS = "SELECT to_regnamespace('etlstore_deploy') IS NOT NULL"
_CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS etlstore_deploy"
_CREATE_CHECKSUMS = """
    CREATE TABLE IF NOT EXISTS etlstore_deploy.migration_checksums (
        migration_id text PRIMARY KEY,
        sha256 text NOT NULL,
        rollback_sha256 text,
        recorded_at timestamptz NOT NULL DEFAULT now()
    )
"""
_CHECKSUMS_EXIST = "SELECT to_regclass('etlstore_deploy.migration_checksums') IS NOT NULL"
_READ_CHECKSUMS = (
    "SELECT migration_id, sha256, rollback_sha256 FROM etlstore_deploy.migration_checksums"
)
_RECORD_CHECKSUM = """
    INSERT INTO etlstore_deploy.migration_checksums (migration_id, sha256, rollback_sha256)
    VALUES (%s, %s, %s)
    ON CONFLICT (migration_id) DO UPDATE
    SET sha256 = excluded.sha256, rollback_sha256 = excluded.rollback_sha256, recorded_at = now()
"""
_YOYO_TABLES_EXIST = "SELECT to_regclass('_yoyo_migration') IS NOT NULL"
_APPLIED_IDS = "SELECT migration_id FROM _yoyo_migration ORDER BY applied_at_utc"
_LOCK_ROW = "SELECT pid, ctime FROM yoyo_lock"
_BREAK_LOCK_ROW = "DELETE FROM yoyo_lock WHERE pid = %s"
# With the deploy lock held, another session of a deploy is an orphan of a killed one: the server
# finishes its statement (no client check while it waits for a lock), so a non-transactional
# migration could still change the schema under the next deploy.
_ORPHAN_BACKENDS = """
    SELECT pid FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = %s AND pid <> pg_backend_pid()
"""
_TERMINATE_ORPHANS = """
    SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = %s AND pid <> pg_backend_pid()
"""
_LOCK_TABLE_EXISTS = "SELECT to_regclass('yoyo_lock') IS NOT NULL"
# One key per database: advisory locks are scoped to the database they are taken in.
_TRY_DEPLOY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('etlstore migrate', 0))"
_DEPLOY_LOCK_HOLDER = """
    SELECT a.pid, a.application_name, a.client_addr::text
    FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.database = (
        SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.granted AND (l.classid::bigint << 32 | l.objid::bigint)
            = hashtextextended('etlstore migrate', 0)
"""


class DeployError(Exception):
    """The deploy stopped before or while applying migrations; the message says what to do."""


class MigrationsChanged(DeployError):
    """Applied migrations whose files changed (or vanished) since they were applied."""


class DeployLocked(DeployError):
    """Another ``etlstore migrate`` holds the database for longer than we wait."""


class StaleLock(DeployError):
    """yoyo_lock holds a lock that no running deploy owns: a deploy was killed."""


class LockRetriesExhausted(DeployError):
    """A migration kept hitting lock_timeout: a long transaction holds what it needs."""


@dataclass(frozen=True, slots=True)
class MigrationCheck:
    """What ``etlstore migrate --check`` reports: what would run, and what changed."""

    pending: list[str]
    problems: list[str]


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _rollback_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".sql") + ".rollback.sql")


def _file_checksums(path: Path) -> tuple[str | None, str | None]:
    return _sha256(path), _sha256(_rollback_path(path)) if path.suffix == ".sql" else None


def _problems(
    conn: psycopg.Connection[Any], migrations: Sequence[Any], migrations_dir: Path
) -> list[str]:
    """Applied migrations whose recorded checksums no longer match their files."""
    if not _fetch_flag(conn, _YOYO_TABLES_EXIST):
        return []
    applied = [row[0] for row in conn.execute(_APPLIED_IDS)]
    recorded: dict[str, tuple[str, str | None]] = {}
    if _fetch_flag(conn, _CHECKSUMS_EXIST):
        recorded = {row[0]: (row[1], row[2]) for row in conn.execute(_READ_CHECKSUMS)}
    by_id = {m.id: Path(m.path) for m in migrations}
    problems = []
    for migration_id in applied:
        path = by_id.get(migration_id)
        if path is None:
            problems.append(f"{migration_id}: applied, but no such file in {migrations_dir}")
            continue
        if migration_id not in recorded:
            continue  # applied before checksums were kept: recorded on the next deploy
        now = _file_checksums(path)
        before = recorded[migration_id]
        if now[0] != before[0]:
            problems.append(f"{path}: changed since it was applied")
        if now[1] != before[1]:
            problems.append(f"{_rollback_path(path)}: changed since its migration was applied")
    return problems


def _fetch_flag(conn: psycopg.Connection[Any], query: LiteralString) -> bool:
    row = conn.execute(query).fetchone()
    return bool(row and row[0])


def _changed_error(problems: list[str]) -> MigrationsChanged:
    return MigrationsChanged(
        "applied migrations differ from the files; nothing was applied:\n  "
        + "\n  ".join(problems)
        + "\nrestore the applied files and put the change in a new migration"
    )


def check_migrations(dsn: str, migrations_dir: Path | None = None) -> MigrationCheck:
    """Compare the database with the files without changing anything."""
    folder = migrations_dir or default_migrations_dir()
    migrations = read_migrations(str(folder))
    with psycopg.connect(asyncpg_dsn(dsn), autocommit=True) as conn:
        problems = _problems(conn, migrations, folder)
        applied = set()
        if _fetch_flag(conn, _YOYO_TABLES_EXIST):
            applied = {row[0] for row in conn.execute(_APPLIED_IDS)}
    return MigrationCheck([m.id for m in migrations if m.id not in applied], problems)


def _yoyo_url(dsn: str, lock_timeout: str) -> str:
    """yoyo's URL with libpq options: every yoyo connection gets the lock_timeout."""
    parts = urlsplit(yoyo_url(dsn))
    query = dict(parse_qsl(parts.query))
    options = f"{query.pop('options', '')} -c lock_timeout={lock_timeout}".strip()
    query.update(options=options, application_name=APPLICATION_NAME)
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextmanager
def _deploy_session(dsn: str, wait_s: float) -> Iterator[psycopg.Connection[Any]]:
    """A connection holding the deploy's advisory lock for as long as it is open."""
    with psycopg.connect(
        asyncpg_dsn(dsn), autocommit=True, application_name=APPLICATION_NAME
    ) as conn:
        deadline = time.monotonic() + wait_s
        while not _fetch_flag(conn, _TRY_DEPLOY_LOCK):
            if time.monotonic() > deadline:
                holder = conn.execute(_DEPLOY_LOCK_HOLDER).fetchone()
                who = f"backend {holder[0]} ({holder[1]}, from {holder[2]})" if holder else "?"
                raise DeployLocked(
                    f"another etlstore migrate is deploying to this database ({who}); "
                    "wait for it to finish"
                )
            time.sleep(0.2)
        yield conn


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clear_stale_lock(
    conn: psycopg.Connection[Any], break_stale: bool, notify: Callable[[str], None]
) -> None:
    """With the deploy lock held: a yoyo_lock row is left by a killed process, or by plain yoyo."""
    if not _fetch_flag(conn, _LOCK_TABLE_EXISTS):
        return
    row = conn.execute(_LOCK_ROW).fetchone()
    if row is None:
        return
    pid, taken_at = row
    if _pid_alive(pid):
        return  # a `yoyo apply` on this host holds it: wait for it as yoyo does
    if not break_stale:
        orphans = [row[0] for row in conn.execute(_ORPHAN_BACKENDS, (APPLICATION_NAME,))]
        still = f"; its server sessions {orphans} still run" if orphans else ""
        raise StaleLock(
            f"yoyo_lock holds a lock taken by process {pid} at {taken_at} UTC, but no etlstore "
            f"deploy is running and no process {pid} is alive on this host: a deploy was "
            f"killed{still}. If no `yoyo apply` runs against this database from another host, "
            "rerun with --break-stale-lock"
        )
    row = conn.execute(_TERMINATE_ORPHANS, (APPLICATION_NAME,)).fetchone()
    if row and row[0]:
        notify(f"terminated {row[0]} server session(s) left by the killed deploy")
    conn.execute(_BREAK_LOCK_ROW, (pid,))
    notify(f"broke the stale yoyo lock of process {pid} (taken at {taken_at} UTC)")


def _apply_one(
    backend: Any,
    migration: Any,
    *,
    retries: int,
    delay_s: float,
    notify: Callable[[str], None],
) -> None:
    for attempt in range(retries + 1):
        try:
            backend.apply_one(migration)
        except LockNotAvailable as exc:
            if attempt == retries:
                raise LockRetriesExhausted(
                    f"{migration.id}: could not take its locks in {retries + 1} attempts "
                    f"({exc.diag.message_primary}); a long transaction holds them: find it in "
                    "pg_stat_activity / pg_locks, then deploy again"
                ) from exc
            pause = min(delay_s * 2**attempt, 30.0)
            notify(
                f"{migration.id}: lock not available (attempt {attempt + 1} of {retries + 1}), "
                f"rolled back; retrying in {pause:g} s"
            )
            time.sleep(pause)
        else:
            return


def deploy_migrations(
    dsn: str,
    migrations_dir: Path | None = None,
    *,
    lock_timeout: str = "5s",
    lock_retries: int = 5,
    retry_delay_s: float = 1.0,
    wait_s: float = 10.0,
    break_stale_lock: bool = False,
    notify: Callable[[str], None] = lambda _: None,
) -> list[str]:
    """Verify checksums, then apply every pending migration; return the ids applied, in order."""
    folder = migrations_dir or default_migrations_dir()
    migrations = read_migrations(str(folder))
    with _deploy_session(dsn, wait_s) as conn:
        if not _fetch_flag(conn, _SCHEMA_EXISTS):
            conn.execute(_CREATE_SCHEMA)
        conn.execute(_CREATE_CHECKSUMS)
        _clear_stale_lock(conn, break_stale_lock, notify)
        backend = get_backend(_yoyo_url(dsn, lock_timeout))
        try:
            with backend.lock(timeout=wait_s):
                pending = backend.to_apply(migrations)  # also creates yoyo's tables
                problems = _problems(conn, migrations, folder)
                if problems:
                    raise _changed_error(problems)
                pending_ids = {m.id for m in pending}
                for migration in migrations:
                    if migration.id not in pending_ids:
                        _record_checksum(conn, migration, only_if_missing=True)
                for migration in pending:
                    _record_checksum(conn, migration)
                    _apply_one(
                        backend,
                        migration,
                        retries=lock_retries,
                        delay_s=retry_delay_s,
                        notify=notify,
                    )
                backend.run_post_apply(pending)
                return [m.id for m in pending]
        finally:
            backend.connection.close()


_RECORD_MISSING_CHECKSUM = """
    INSERT INTO etlstore_deploy.migration_checksums (migration_id, sha256, rollback_sha256)
    SELECT %s, %s, %s
    WHERE EXISTS (SELECT FROM _yoyo_migration WHERE migration_id = %s)
    ON CONFLICT (migration_id) DO NOTHING
"""


def _record_checksum(
    conn: psycopg.Connection[Any], migration: Any, *, only_if_missing: bool = False
) -> None:
    """Before a migration runs (or, for one applied without etlstore, the first time seen)."""
    sha, rollback_sha = _file_checksums(Path(migration.path))
    if only_if_missing:
        conn.execute(_RECORD_MISSING_CHECKSUM, (migration.id, sha, rollback_sha, migration.id))
    else:
        conn.execute(_RECORD_CHECKSUM, (migration.id, sha, rollback_sha))
