"""The ``etlstore`` command: the embedded database, migrations and the main job."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import yoyo.exceptions

from etlstore import _partitions
from etlstore._backup import BackupError, backup_database, restore_database
from etlstore._config import default_embedded, resolve_dsn
from etlstore._deploy import DeployError, check_migrations, deploy_migrations
from etlstore._drift import find_drift
from etlstore._embedded import EmbeddedServerError
from etlstore._migrations import apply_migrations
from etlstore._summary import format_summary, read_summary
from etlstore.errors import EtlstoreError

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
    if args.check:
        check = check_migrations(resolve_dsn(), args.migrations)
        print(f"{len(check.pending)} pending" + "".join(f"\n  {m}" for m in check.pending))
        for problem in check.problems:
            print(f"changed: {problem}", file=sys.stderr)
        return 1 if check.problems else 0
    applied = deploy_migrations(
        resolve_dsn(),
        args.migrations,
        lock_timeout=args.lock_timeout,
        lock_retries=args.lock_retries,
        break_stale_lock=args.break_stale_lock,
        notify=lambda message: print(message, file=sys.stderr, flush=True),
    )
    print(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m}" for m in applied))
    return 0


def _drift(args: argparse.Namespace) -> int:
    drift = find_drift(resolve_dsn(), args.migrations, reference_dsn=args.reference_dsn)
    print(drift.report())
    return 1 if drift else 0


def _backup(args: argparse.Namespace) -> int:
    backup_database(resolve_dsn(), args.file, bin_dir=args.pg_bin)
    print(f"backed up to {args.file} ({args.file.stat().st_size:,} bytes)")
    return 0


def _restore(args: argparse.Namespace) -> int:
    restore_database(resolve_dsn(), args.file, clean=args.clean, bin_dir=args.pg_bin)
    print(f"restored {args.file}")
    return 0


def _partitions_show(_: argparse.Namespace) -> int:
    print(_partitions.format_partitions(_partitions.show(resolve_dsn())))
    return 0


def _partitions_maintain(args: argparse.Namespace) -> int:
    print(_partitions.format_maintenance(_partitions.maintain(resolve_dsn(), args.at)))
    return 0


def _partitions_policy(args: argparse.Namespace) -> int:
    policy = _partitions.set_policy(
        resolve_dsn(),
        args.table,
        unit=args.unit,
        premake=args.premake,
        retention=None if args.retention_days is None else timedelta(days=args.retention_days),
        keep_forever=args.keep_forever,
        action=args.retention_action,
    )
    print(_partitions.format_partitions([(policy, [])]))
    return 0


def _demo(args: argparse.Namespace) -> int:
    try:
        return _run_demo(args)
    except KeyboardInterrupt:  # before the workload's own handler is installed: starting, migrating
        print("etlstore: interrupted", file=sys.stderr)
        return 130


def _run_demo(args: argparse.Namespace) -> int:
    dsn = resolve_dsn()
    applied = apply_migrations(dsn, args.migrations)
    print(f"database: {dsn}")
    print(f"migrations: {len(applied)} applied now\n", flush=True)
    summary = read_summary(dsn)
    if "pipelines" not in {table.name for table in summary.tables}:
        # Another project's migrations: there is no ETL store to put under load, only a schema.
        print(format_summary(summary))
        return 0
    from etlstore._demo import DEMO_SCALE, run_demo  # rich, only for this command

    scale = DEMO_SCALE if args.scale == 1 else DEMO_SCALE.times(args.scale)
    return run_demo(dsn, seconds=args.seconds, scale=scale)


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
    migrate = commands.add_parser(
        "migrate", help="apply pending migrations (yoyo + checksums, lock timeouts, stale locks)"
    )
    migrate.add_argument("--migrations", type=Path, help=migrations_help)
    migrate.add_argument(
        "--check",
        action="store_true",
        help="apply nothing: list pending migrations, exit 1 if an applied one changed",
    )
    migrate.add_argument(
        "--lock-timeout", default="5s", help="lock_timeout of every DDL statement (default 5s)"
    )
    migrate.add_argument(
        "--lock-retries", type=int, default=5, help="retries of a migration that hit it (5)"
    )
    migrate.add_argument(
        "--break-stale-lock",
        action="store_true",
        help="remove a yoyo lock left by a killed deploy (never one a running deploy holds)",
    )
    migrate.set_defaults(run=_migrate)

    drift = commands.add_parser(
        "drift", help="compare the live schema with the migrations' (exit 1 on drift)"
    )
    drift.add_argument("--migrations", type=Path, help=migrations_help)
    drift.add_argument(
        "--reference-dsn",
        help="server for the throwaway reference database (default: the live server)",
    )
    drift.set_defaults(run=_drift)

    pg_bin_help = "directory of pg_dump/pg_restore (default: $ETLSTORE_PG_BIN, else embedded)"
    backup = commands.add_parser("backup", help="pg_dump the database (custom format) to FILE")
    backup.add_argument("file", type=Path, metavar="FILE")
    backup.add_argument("--pg-bin", type=Path, help=pg_bin_help)
    backup.set_defaults(run=_backup)
    restore = commands.add_parser(
        "restore", help="pg_restore FILE into the database (which must be empty)"
    )
    restore.add_argument("file", type=Path, metavar="FILE")
    restore.add_argument(
        "--clean", action="store_true", help="drop the dump's objects first (non-empty target)"
    )
    restore.add_argument("--pg-bin", type=Path, help=pg_bin_help)
    restore.set_defaults(run=_restore)

    partitions = commands.add_parser(
        "partitions", help="the partitioned tables: show, maintain (daily), change a policy"
    )
    partitions.set_defaults(run=_partitions_show)
    partition_commands = partitions.add_subparsers(dest="partitions_command")
    partition_commands.add_parser(
        "show", help="each table's policy and partitions (the default)"
    ).set_defaults(run=_partitions_show)
    maintain = partition_commands.add_parser(
        "maintain", help="create future partitions, drop or detach expired ones (run daily)"
    )
    maintain.add_argument(
        "--at",
        type=datetime.fromisoformat,
        help="act as of this ISO time instead of now (to prepare ahead, or to test a policy)",
    )
    maintain.set_defaults(run=_partitions_maintain)
    policy = partition_commands.add_parser("policy", help="change how TABLE is partitioned/kept")
    policy.add_argument("table", metavar="TABLE")
    policy.add_argument("--unit", choices=("day", "week", "month"), help="partition size")
    policy.add_argument("--premake", type=int, help="partitions kept ready after the current one")
    retention = policy.add_mutually_exclusive_group()
    retention.add_argument(
        "--retention-days", type=int, help="retire partitions older than this many days"
    )
    retention.add_argument("--keep-forever", action="store_true", help="no retention")
    policy.add_argument(
        "--retention-action", choices=("drop", "detach"), help="what retiring a partition does"
    )
    policy.set_defaults(run=_partitions_policy)

    demo = commands.add_parser(
        "demo", help="the main job: database, migrations, seed, a live workload against targets"
    )
    demo.add_argument("--migrations", type=Path, help=migrations_help)
    demo.add_argument(
        "--seconds", type=float, default=20.0, help="how long the workload runs (default 20)"
    )
    demo.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="seed size: 1 = 1,000 pipelines and 100,000 executions (default 1)",
    )
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except (
        EmbeddedServerError,
        ValueError,
        yoyo.exceptions.LockTimeout,
        BackupError,
        DeployError,
        EtlstoreError,
    ) as exc:
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
