"""The ``etlstore`` command: the embedded database, migrations and the main job."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import psycopg
import yoyo.exceptions

from etlstore._config import default_embedded, resolve_dsn
from etlstore._embedded import EmbeddedServerError
from etlstore._migrations import apply_migrations
from etlstore._summary import format_summary, read_summary

__all__ = ["main"]


def _db_start(args: argparse.Namespace) -> int:
    print(default_embedded().start(port=args.port))
    return 0


def _db_stop(_: argparse.Namespace) -> int:
    server = default_embedded()
    print("stopped" if server.stop() else f"not running ({server.data_dir})")
    return 0


def _db_status(_: argparse.Namespace) -> int:
    status = default_embedded().status()
    state = "running" if status.running else "stopped"
    if not status.initialized:
        state = "not created (run `etlstore db start`)"
    print(f"embedded PostgreSQL {status.version}: {state}")
    print(f"  data dir: {status.data_dir}")
    if status.port is not None:
        print(f"  port:     {status.port} on 127.0.0.1")
    if status.pid is not None:
        print(f"  pid:      {status.pid}")
    if os.environ.get("DATABASE_URL"):
        print("  note: DATABASE_URL is set, so etlstore uses that server, not this one")
    return 0


def _db_url(_: argparse.Namespace) -> int:
    url = os.environ.get("DATABASE_URL")
    print(url if url else default_embedded().dsn())
    return 0


def _migrate(args: argparse.Namespace) -> int:
    applied = apply_migrations(resolve_dsn(), args.migrations)
    print(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m}" for m in applied))
    return 0


def _demo(args: argparse.Namespace) -> int:
    dsn = resolve_dsn()
    applied = apply_migrations(dsn, args.migrations)
    print(f"database: {dsn}")
    print(f"migrations: {len(applied)} applied now\n")
    print(format_summary(read_summary(dsn)))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etlstore", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="the embedded PostgreSQL (when DATABASE_URL is unset)")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    start = db_commands.add_parser("start", help="create if needed, start, print the URL")
    start.add_argument("--port", type=int, help="listen on this port (remembered)")
    start.set_defaults(run=_db_start)
    db_commands.add_parser("stop", help="stop the server").set_defaults(run=_db_stop)
    db_commands.add_parser("status", help="is it running, where").set_defaults(run=_db_status)
    db_commands.add_parser("url", help="print the database URL").set_defaults(run=_db_url)

    migrations_help = "migrations directory (default: ./migrations)"
    migrate = commands.add_parser("migrate", help="apply pending migrations through yoyo")
    migrate.add_argument("--migrations", type=Path, help=migrations_help)
    migrate.set_defaults(run=_migrate)

    demo = commands.add_parser("demo", help="the main job: database, migrations, summary")
    demo.add_argument("--migrations", type=Path, help=migrations_help)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except (EmbeddedServerError, ValueError, yoyo.exceptions.LockTimeout) as exc:
        print(f"etlstore: error: {exc}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        print(f"etlstore: error: cannot reach the database: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"etlstore: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
