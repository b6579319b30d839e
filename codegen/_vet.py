"""``python -m codegen vet``: prove from each query's generic plan that it has an index path.

Every statement is EXPLAINed with its parameters unknown (``EXPLAIN (GENERIC_PLAN)``) on a
throwaway database with the migrations applied and sequential scans disabled, so the planner
picks an index whenever one can serve; whatever scan of a large table is left is a finding. The
whole plan tree is walked, not only its top node. Tables are large unless their comment declares
them small (``@vet small: <why>``); a query opts out of a rule with ``-- @vet allow <rule>:
<reason>`` in its doc comment. See docs/vet.md.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import msgspec
import psycopg
from pglast import ast as pg_ast
from psycopg import pq, sql

from codegen._cli import Settings, load_settings, throwaway_database
from codegen._parse import ParsedFile, ParsedQuery, parse_sql_dir
from codegen._plan import (
    HEAP_SCANS,
    INDEX_SCANS,
    Plan,
    PlanFacts,
    bounded_by_limit,
    explain,
    leading_scans,
    planner_settings,
    walk,
)
from codegen._shape import parse_statement, star_offsets
from etlstore._embedded import EmbeddedServerError
from etlstore._migrations import apply_migrations

__all__ = [
    "RULES",
    "Finding",
    "SchemaFacts",
    "load_schema_facts",
    "main",
    "prepare_errors",
    "vet_foreign_keys",
    "vet_queries",
]

RULES = ("seqscan", "sort", "unbounded", "select-star", "fk-index")
Severity = Literal["error", "warning"]

_SMALL = re.compile(r"@vet\s+small\b(?:\s*:\s*(?P<reason>[^\n]*))?")
_ALLOW = re.compile(r"^allow\s+(?P<rules>[\w\-]+(?:\s*,\s*[\w\-]+)*)\s*:\s*(?P<reason>\S.*)$")


class Finding(msgspec.Struct, frozen=True, order=True):
    """One line of vet's report: ``<file>:<line>: <rule>: <message>``."""

    file: str
    line: int
    rule: str
    message: str
    severity: Severity = "error"
    allowed: str = ""
    """The opt-out's reason when the query allows this rule."""

    @property
    def fails(self) -> bool:
        return self.severity == "error" and not self.allowed

    def __str__(self) -> str:
        if self.allowed:
            label = f"allowed ({self.allowed}): "
        elif self.severity == "warning":
            label = "warning: "
        else:
            label = ""
        return f"{self.file}:{self.line}: {self.rule}: {label}{self.message}"


class SchemaFacts(msgspec.Struct, frozen=True):
    """What the rules need from the catalog: small tables and each index's table."""

    small: dict[str, str]
    """Table name -> the reason it is declared small."""
    index_tables: dict[str, str]
    """Index name -> its table's name."""
    partial_indexes: frozenset[str]


_TABLES_SQL = """
SELECT c.relname, coalesce(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname = ANY(current_schemas(false))
"""
_INDEXES_SQL = """
SELECT i.relname, t.relname, x.indpred IS NOT NULL
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = ANY(current_schemas(false))
"""
# Foreign keys whose columns are not the leading columns of a (non-partial) index of their table:
# deleting or re-keying a referenced row scans the referencing table for each row.
_UNINDEXED_FKS_SQL = """
SELECT con.conname, c.relname, r.relname,
       array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
             ORDER BY k.ord),
       coalesce(obj_description(con.oid, 'pg_constraint'), '')
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_class r ON r.oid = con.confrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype = 'f' AND n.nspname = ANY(current_schemas(false))
  AND NOT EXISTS (
      SELECT 1 FROM pg_index x
      WHERE x.indrelid = con.conrelid AND x.indpred IS NULL
        AND (string_to_array(x.indkey::text, ' ')::int2[])[1:cardinality(con.conkey)]
            @> con.conkey
        AND cardinality(con.conkey) <= x.indnkeyatts
  )
ORDER BY c.relname, con.conname
"""


def load_schema_facts(conn: psycopg.Connection[tuple[object, ...]]) -> SchemaFacts:
    small: dict[str, str] = {}
    for name, comment in conn.execute(_TABLES_SQL.encode()).fetchall():
        if found := _SMALL.search(str(comment)):
            small[str(name)] = (found.group("reason") or "declared small").strip()
    index_tables: dict[str, str] = {}
    partial: set[str] = set()
    for index, table, is_partial in conn.execute(_INDEXES_SQL.encode()).fetchall():
        index_tables[str(index)] = str(table)
        if is_partial:
            partial.add(str(index))
    return SchemaFacts(small, index_tables, frozenset(partial))


def _table_of(node: Plan, facts: SchemaFacts) -> str:
    relation = node.get("Relation Name")
    if isinstance(relation, str):
        return relation
    return facts.index_tables.get(str(node.get("Index Name", "")), "")


def _sort_findings(plan: Plan, facts: SchemaFacts) -> list[tuple[Plan, str]]:
    """(scan, message) for each Sort under a LIMIT that sorts rows of a large table."""
    found: list[tuple[Plan, str]] = []
    for node, ancestors in walk(plan, ()):
        if node["Node Type"] != "Sort" or not bounded_by_limit(ancestors):
            continue
        keys = [str(k) for k in node.get("Sort Key", ())]
        qualifier = re.match(r"^\(*(\w+)\.", keys[0]) if keys else None
        for scan in leading_scans(node["Plans"][0]):
            table = _table_of(scan, facts)
            if table in facts.small or not table:
                continue
            alias = str(scan.get("Alias", table))
            if qualifier is not None and qualifier.group(1) != alias:
                continue
            found.append(
                (
                    scan,
                    f"sorts rows of {table} by {', '.join(keys)} to take the first of them "
                    "(ORDER BY ... LIMIT): no index gives this order; add one whose columns are "
                    "the equality filters, then the ORDER BY columns",
                )
            )
    return found


def _scan_findings(plan: Plan, facts: SchemaFacts) -> list[tuple[Plan, str]]:
    """(scan, message) for each scan that reads a whole large table."""
    found: list[tuple[Plan, str]] = []
    for node, ancestors in walk(plan, ()):
        kind = node["Node Type"]
        table = _table_of(node, facts)
        if not table or table in facts.small:
            continue
        if kind == "Seq Scan":
            found.append((node, f"Seq Scan on {table}: no index serves this access"))
        elif (
            kind in INDEX_SCANS
            and "Index Cond" not in node
            and node.get("Index Name") not in facts.partial_indexes
            # A LIMIT stops an unfiltered scan early; with a filter it may read everything.
            and ("Filter" in node or not bounded_by_limit(ancestors))
        ):
            found.append(
                (
                    node,
                    f"{kind} on {table} reads all of it through {node.get('Index Name')} "
                    "(no index condition): no index serves this access",
                )
            )
    return found


def _relation_lines(query: ParsedQuery) -> dict[str, int]:
    """The line of each table reference (by alias and by name; the first one wins)."""
    stmt = parse_statement(query.sql)
    lines: dict[str, int] = {}
    if stmt is None:
        return lines
    data = query.sql.encode()
    stack: list[object] = [stmt]
    found: list[pg_ast.RangeVar] = []
    while stack:
        item = stack.pop()
        if isinstance(item, tuple | list):
            stack.extend(item)
        elif isinstance(item, pg_ast.Node):
            if isinstance(item, pg_ast.RangeVar):
                found.append(item)
            stack.extend(getattr(item, slot) for slot in item.__slots__)  # type: ignore[attr-defined]
    for rangevar in sorted(found, key=lambda r: r.location or 0):
        line = query.sql_line + data[: rangevar.location or 0].count(b"\n")
        alias = rangevar.alias.aliasname if rangevar.alias is not None else None
        for key in (alias, rangevar.relname):
            if key and key not in lines:
                lines[key] = line
    return lines


def _opt_outs(query: ParsedQuery, source: str) -> tuple[dict[str, tuple[str, int]], list[Finding]]:
    """The rules a query allows: rule -> (reason, line); and mistakes in the directives."""
    allowed: dict[str, tuple[str, int]] = {}
    mistakes: list[Finding] = []
    for directive in query.directives:
        if directive.name != "vet":
            continue
        matched = _ALLOW.match(directive.argument)
        if matched is None:
            mistakes.append(
                Finding(
                    source,
                    directive.line,
                    "directive",
                    f"{query.name}: expected `-- @vet allow <rule>[, <rule>]: <reason>`, "
                    f"got {directive.argument!r}",
                )
            )
            continue
        for rule in (r.strip() for r in matched.group("rules").split(",")):
            if rule not in RULES:
                mistakes.append(
                    Finding(
                        source,
                        directive.line,
                        "directive",
                        f"{query.name}: unknown rule {rule!r} (rules: {', '.join(RULES)})",
                    )
                )
            allowed[rule] = (matched.group("reason").strip(), directive.line)
    return allowed, mistakes


def _is_unbounded(query: ParsedQuery, plan: Plan) -> bool:
    """A rows query (no suffix) without a LIMIT: on its SELECT, or on the rows a DML changes."""
    if query.operation != "":
        return False
    stmt = parse_statement(query.sql)
    if isinstance(stmt, pg_ast.SelectStmt):
        return stmt.limitCount is None
    # UPDATE ... FROM (SELECT ... LIMIT n) or WHERE id IN (SELECT ... LIMIT n): a batch.
    return not any(node["Node Type"] == "Limit" for node, _ in walk(plan, ()))


def _query_findings(
    conn: psycopg.Connection[tuple[object, ...]],
    query: ParsedQuery,
    source: str,
    facts: SchemaFacts,
) -> tuple[list[Finding], PlanFacts | None]:
    findings: list[tuple[int, str, str, Severity]] = []
    stmt = parse_statement(query.sql)
    if stmt is not None:
        data = query.sql.encode()
        for offset in star_offsets(stmt):
            line = query.sql_line + data[:offset].count(b"\n")
            message = f"{query.name}: SELECT * (list the columns; the generator rejects it too)"
            findings.append((line, "select-star", message, "error"))
    planned: PlanFacts | None = None
    if not findings:
        try:
            planned = explain(conn, query.sql)
        except psycopg.Error as exc:
            message = f"{query.name}: cannot EXPLAIN: {exc.diag.message_primary or exc}"
            return [Finding(source, query.line, "explain", message)], None
    if planned is not None:
        lines = _relation_lines(query)

        def line_of(node: Plan) -> int:
            table = _table_of(node, facts)
            return lines.get(str(node.get("Alias", "")), lines.get(table, query.line))

        for node, message in _scan_findings(planned.plan, facts):
            findings.append((line_of(node), "seqscan", f"{query.name}: {message}", "error"))
        if _sort_findings(planned.plan, facts):
            # The planner may prefer a sort while an index could serve it; without sorts it
            # picks the index when one exists, so what still sorts has none.
            for node, message in _sort_findings(explain(conn, query.sql, sort=False).plan, facts):
                findings.append((line_of(node), "sort", f"{query.name}: {message}", "error"))
        large = sorted(
            {
                table
                for node, _ in walk(planned.plan, ())
                if node["Node Type"] in HEAP_SCANS | INDEX_SCANS
                and (table := _table_of(node, facts))
                and table not in facts.small
            }
        )
        if large and _is_unbounded(query, planned.plan):
            message = (
                f"{query.name}: returns rows of {', '.join(large)} with no LIMIT; page it, "
                "or allow it with the reason it stays small"
            )
            findings.append((query.line, "unbounded", message, "warning"))
    allowed, mistakes = _opt_outs(query, source)
    result = list(mistakes)
    used: set[str] = set()
    for line, rule, message, severity in findings:
        reason = allowed.get(rule, ("", 0))[0]
        if reason:
            used.add(rule)
        result.append(Finding(source, line, rule, message, severity, reason))
    for rule, (_, line) in allowed.items():
        if rule in RULES and rule not in used:
            message = f"{query.name}: allows {rule} but vet finds nothing to allow; remove it"
            result.append(Finding(source, line, "directive", message, "warning"))
    return result, planned


def vet_queries(
    conn: psycopg.Connection[tuple[object, ...]], files: list[ParsedFile]
) -> tuple[list[Finding], dict[str, PlanFacts]]:
    """Every query's findings, and the plans (by query name) for the docs.

    ``conn`` is on the migrated database; planner_settings() is applied here.
    """
    planner_settings(conn)
    facts = load_schema_facts(conn)
    findings: list[Finding] = []
    plans: dict[str, PlanFacts] = {}
    for parsed in files:
        for query in parsed.queries:
            if query.operation == "#" or isinstance(parse_statement(query.sql), pg_ast.CopyStmt):
                continue  # scripts are not prepared; COPY has no plan
            query_findings, planned = _query_findings(conn, query, parsed.source, facts)
            findings += query_findings
            if planned is not None:
                plans[query.name] = planned
    return findings, plans


def _fk_line(
    migrations: dict[str, str], table: str, columns: list[str], name: str
) -> tuple[str, int]:
    """Where a foreign key is declared: its name, else the REFERENCES on its column's line."""
    for source, text in migrations.items():
        for number, line in enumerate(text.splitlines(), 1):
            if re.search(rf"\b{re.escape(name)}\b", line):
                return source, number
    for source, text in migrations.items():
        current = ""
        for number, line in enumerate(text.splitlines(), 1):
            if created := re.match(r"\s*CREATE TABLE\s+(?:IF NOT EXISTS\s+)?(?:\w+\.)?(\w+)", line):
                current = created.group(1)
            if current == table and "REFERENCES" in line.upper() and columns[0] in line:
                return source, number
    return next(iter(migrations), "migrations"), 0


def vet_foreign_keys(
    conn: psycopg.Connection[tuple[object, ...]], migrations: dict[str, str]
) -> list[Finding]:
    """Foreign keys without an index leading with their columns; ``migrations``: name -> text."""
    facts = load_schema_facts(conn)
    findings: list[Finding] = []
    for name, table, parent, columns, comment in conn.execute(
        _UNINDEXED_FKS_SQL.encode()
    ).fetchall():
        table, columns_ = str(table), [str(c) for c in columns]  # type: ignore[attr-defined]
        if table in facts.small:
            continue
        source, line = _fk_line(migrations, table, columns_, str(name))
        message = (
            f"foreign key {name} of {table} ({', '.join(columns_)}) -> {parent} has no index "
            f"leading with these columns: deleting a {parent} row scans {table}"
        )
        allowed = re.search(r"@vet\s+allow\s+fk-index\s*:\s*(?P<reason>[^\n]+)", str(comment))
        findings.append(
            Finding(
                source,
                line,
                "fk-index",
                message,
                "error",
                allowed.group("reason").strip() if allowed else "",
            )
        )
    return findings


def prepare_errors(
    conn: psycopg.Connection[tuple[object, ...]], files: list[ParsedFile], ref: str
) -> list[Finding]:
    """Prepare every query of ``files`` (another release's) and report what the server rejects."""
    findings: list[Finding] = []
    pgconn = conn.pgconn
    for parsed in files:
        for query in parsed.queries:
            if query.operation == "#":
                continue
            stmt = parse_statement(query.sql)
            if isinstance(stmt, pg_ast.CopyStmt):
                # COPY cannot be prepared; its table and columns still have to exist.
                relation = stmt.relation
                assert relation is not None
                names = [sql.Identifier(s.sval) for s in stmt.attlist or ()]
                text = (
                    sql.SQL("SELECT {} FROM {} LIMIT 0")
                    .format(
                        sql.SQL(", ").join(names) if names else sql.SQL("*"),
                        sql.Identifier(*filter(None, (relation.schemaname, relation.relname))),
                    )
                    .as_string(conn)
                )
            else:
                text = query.sql
            result = pgconn.prepare(b"", text.encode())
            if result.status == pq.ExecStatus.COMMAND_OK:
                continue
            primary = (result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode()
            position = (result.error_field(pq.DiagnosticField.STATEMENT_POSITION) or b"").decode()
            line = query.line
            if position.isdigit() and text is query.sql:
                line = query.sql_line + query.sql.count("\n", 0, int(position) - 1)
            message = f"{query.name}: {primary}"
            findings.append(Finding(parsed.source, line, f"against {ref}", message))
    return findings


def _sql_at(settings: Settings, ref: str, into: Path) -> Path:
    """The SQL directory as it is at git ``ref``, extracted under ``into``."""
    relative = settings.sql.resolve().relative_to(settings.root.resolve()).as_posix()
    archive = subprocess.run(
        ["git", "-C", str(settings.root), "archive", "--format=tar", ref, "--", relative],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise OSError(f"git archive {ref} {relative}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / relative


def _migration_texts(settings: Settings) -> dict[str, str]:
    where = settings.display(settings.migrations)
    return {
        f"{where}/{path.name}": path.read_text(encoding="utf-8")
        for path in sorted(settings.migrations.glob("*.sql"))
        if not path.name.endswith(".rollback.sql")
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m codegen vet",
        description="Check from each query's generic plan that it has an index path.",
    )
    parser.add_argument("--sql", metavar="DIR", help="the SQL files (default: [tool.codegen] sql)")
    parser.add_argument("--migrations", metavar="DIR", help="the yoyo migrations directory")
    parser.add_argument("--dsn", metavar="URL", help="a server for the throwaway database")
    parser.add_argument(
        "--against",
        metavar="REF",
        help="also prepare every query of git REF (the running release) on the current schema",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    """Print the findings like a linter; exit 1 when one fails."""
    args = _parser().parse_args(argv)
    args.out = args.package = None
    try:
        settings = load_settings(args)
        files, errors = parse_sql_dir(settings.sql, settings.display(settings.sql))
        with throwaway_database(args.dsn) as dsn:
            if settings.migrations.is_dir():
                try:
                    apply_migrations(dsn, settings.migrations)
                except Exception as exc:  # yoyo raises whatever the driver raised
                    print(
                        f"codegen vet: error: applying the migrations failed: {exc}",
                        file=sys.stderr,
                    )
                    return 1
            with psycopg.connect(dsn, autocommit=True) as conn:
                findings = vet_foreign_keys(conn, _migration_texts(settings))
                findings += vet_queries(conn, files)[0]
                if args.against:
                    with tempfile.TemporaryDirectory(prefix="codegen-vet-") as tmp:
                        old_sql = _sql_at(settings, args.against, Path(tmp))
                        old_files, old_errors = parse_sql_dir(
                            old_sql, settings.display(settings.sql)
                        )
                        errors += old_errors
                        findings += prepare_errors(conn, old_files, args.against)
    except (psycopg.Error, EmbeddedServerError, OSError, tomllib.TOMLDecodeError) as exc:
        print(f"codegen vet: error: {exc}", file=sys.stderr)
        return 1
    for error in errors:
        print(error)
    for finding in sorted(findings):
        print(finding)
    failed = sum(f.fails for f in findings) + len(errors)
    warnings = sum(f.severity == "warning" and not f.allowed for f in findings)
    allowed = sum(bool(f.allowed) for f in findings)
    queries = sum(len(f.queries) for f in files)
    print(
        f"codegen vet: {queries} queries: {failed} error(s), {warnings} warning(s), "
        f"{allowed} allowed",
        file=sys.stderr,
    )
    return 1 if failed else 0
