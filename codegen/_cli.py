"""``python -m codegen``: settings, the throwaway database, and the phases run in order.

Subcommands are looked up in ``_COMMANDS``; with none given, the generator runs (so a later
``python -m codegen vet`` only has to register itself there).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import msgspec
import psycopg

from codegen._analyze import analyze
from codegen._ir import Package, Query
from codegen._parse import SourceError, parse_sql_dir
from codegen._render import render_package
from codegen._write import FormatError, format_sources, stale_files, write_files
from etlstore import _config
from etlstore._embedded import EmbeddedPostgres, EmbeddedServerError

__all__ = ["Settings", "build", "load_settings", "main", "throwaway_database"]


class Settings(msgspec.Struct, frozen=True):
    """Where things are; relative paths are taken from ``root``."""

    root: Path
    sql: Path
    migrations: Path
    out: Path
    package: str

    def display(self, path: Path) -> str:
        """A directory as named in messages: relative to the project root when inside it."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return path.as_posix()


def _project_root(start: Path) -> Path:
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").is_file():
            return directory
    return start


def load_settings(args: argparse.Namespace) -> Settings:
    """Settings from pyproject.toml's [tool.codegen], overridden by the command line's flags."""
    root = _project_root(Path.cwd())
    table: dict[str, str] = {}
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("codegen", {})

    def path(option: str | None, key: str, default: str) -> Path:
        value = Path(option) if option else Path(table.get(key, default))
        return value if value.is_absolute() else root / value

    return Settings(
        root=root,
        sql=path(args.sql, "sql", "sql"),
        migrations=path(args.migrations, "migrations", "migrations"),
        out=path(args.out, "out", "queries"),
        package=args.package or table.get("package", "queries"),
    )


@contextmanager
def throwaway_database(dsn: str | None) -> Iterator[str]:
    """A new empty database, dropped afterwards: on ``dsn``'s server, DATABASE_URL's or embedded."""
    server = dsn or os.environ.get("DATABASE_URL")
    if server:
        with _config.throwaway_database(_config.asyncpg_dsn(server), "codegen") as database:
            yield database
        return
    tmp = Path(tempfile.mkdtemp(prefix="codegen-pg-"))
    cluster = EmbeddedPostgres(tmp / "data", database="postgres", settings={"fsync": "off"})
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def build(settings: Settings, dsn: str) -> tuple[Package, list[SourceError]]:
    """Parse and analyse: the IR and every error found, across all files."""
    files, errors = parse_sql_dir(settings.sql, settings.display(settings.sql))
    package, analysis_errors = analyze(
        dsn,
        settings.migrations,
        files,
        settings.package,
        display=settings.display(settings.migrations),
    )
    return package, sorted(errors + analysis_errors)


def _explain(package: Package, name: str) -> int:
    found: list[tuple[str, Query]] = [
        (m.source, q) for m in package.modules for q in m.queries if q.name == name
    ]
    if not found:
        print(f"codegen: no query named {name}", file=sys.stderr)
        return 1
    source, query = found[0]
    print(f"{query.name} ({source}:{query.line}), operation {query.operation or '(rows)'}")
    for param in query.params:
        kind = "nullable" if param.nullable else "non-null"
        print(f"  param :{param.name}  {param.type.py}  {kind} (${param.position})")
    width = max((len(c.name) for c in query.columns), default=0)
    for column in query.columns:
        annotation = column.type.py + (" | None" if column.nullable else "")
        print(f"  {column.name:<{width}}  {annotation}  {column.reason}")
    if query.row:
        print(f"  row type: {query.row}" + (" (the table's model)" if query.row_is_model else ""))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m codegen",
        description="Generate typed async query functions from SQL files and migrations.",
    )
    parser.add_argument("--sql", metavar="DIR", help="the SQL files (default: [tool.codegen] sql)")
    parser.add_argument("--migrations", metavar="DIR", help="the yoyo migrations directory")
    parser.add_argument("--out", metavar="DIR", help="the generated package's directory")
    parser.add_argument("--package", metavar="NAME", help="the generated package's import name")
    parser.add_argument(
        "--dsn",
        metavar="URL",
        help="a PostgreSQL server to analyse on (a throwaway database is created there); "
        "default: DATABASE_URL's server, else a throwaway embedded cluster",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    parser.add_argument("--explain", metavar="NAME", help="print a query's columns and why")
    return parser


def _generate(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args)
    except tomllib.TOMLDecodeError as exc:
        print(f"codegen: error: pyproject.toml: {exc}", file=sys.stderr)
        return 1
    try:
        with throwaway_database(args.dsn) as dsn:
            package, errors = build(settings, dsn)
        if errors:
            for error in errors:
                print(error, file=sys.stderr)
            print(f"codegen: {len(errors)} error(s); nothing written", file=sys.stderr)
            return 1
        if args.explain:
            return _explain(package, args.explain)
        files = format_sources(render_package(package))
        return _check(settings, files) if args.check else _write(settings, files)
    except (psycopg.Error, EmbeddedServerError, FormatError, OSError) as exc:
        print(f"codegen: error: {exc}", file=sys.stderr)
        return 1


def _check(settings: Settings, files: dict[str, str]) -> int:
    stale = stale_files(settings.out, files)
    for path in stale:
        print(f"codegen: stale: {settings.display(path)}", file=sys.stderr)
    if stale:
        print("codegen: generated code is out of date; run `python -m codegen`", file=sys.stderr)
        return 1
    return 0


def _write(settings: Settings, files: dict[str, str]) -> int:
    touched = write_files(settings.out, files)
    where = settings.display(settings.out)
    print(f"codegen: {where}: {len(touched)} file(s) updated, {len(files)} in all")
    return 0


def _vet(argv: Sequence[str]) -> int:
    # Imported on use: codegen._vet builds on this module's settings and throwaway database.
    from codegen._vet import main as vet_main

    return vet_main(argv)


def _docs(argv: Sequence[str]) -> int:
    from codegen._docs import main as docs_main

    return docs_main(argv)


_COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {"vet": _vet, "docs": _docs}


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand, or generate when the first argument is not one."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in _COMMANDS:
        return _COMMANDS[arguments[0]](arguments[1:])
    return _generate(arguments)
