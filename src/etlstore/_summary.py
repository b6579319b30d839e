"""A summary of the live schema: tables with their row counts and indexes, and enum types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["SchemaSummary", "TableSummary", "format_summary", "read_summary"]

_TABLES_SQL = """
SELECT c.relname,
       coalesce(array_agg(i.relname ORDER BY i.relname) FILTER (WHERE i.relname IS NOT NULL),
                '{}') AS indexes
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index x ON x.indrelid = c.oid
LEFT JOIN pg_class i ON i.oid = x.indexrelid
WHERE n.nspname = current_schema()
  AND c.relkind IN ('r', 'p')
  AND c.relname NOT LIKE '\\_yoyo%' AND c.relname NOT LIKE 'yoyo%'
GROUP BY c.relname
ORDER BY c.relname
"""

_ENUMS_SQL = """
SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)
FROM pg_type t
JOIN pg_enum e ON e.enumtypid = t.oid
JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = current_schema()
GROUP BY t.typname
ORDER BY t.typname
"""


@dataclass(frozen=True, slots=True)
class TableSummary:
    name: str
    row_count: int
    indexes: list[str]


@dataclass(frozen=True, slots=True)
class SchemaSummary:
    server_version: str
    tables: list[TableSummary]
    enums: dict[str, list[str]]


def read_summary(dsn: str) -> SchemaSummary:
    """Read the summary in one connection."""
    with psycopg.connect(dsn) as conn:
        version_row = conn.execute("SHOW server_version").fetchone()
        tables = conn.execute(_TABLES_SQL).fetchall()
        counts = _row_counts(conn, [name for name, _ in tables])
        enums = {name: list(labels) for name, labels in conn.execute(_ENUMS_SQL).fetchall()}
    return SchemaSummary(
        server_version=version_row[0] if version_row else "?",
        tables=[TableSummary(name, counts[name], indexes) for name, indexes in tables],
        enums=enums,
    )


def _row_counts(conn: psycopg.Connection[tuple[Any, ...]], tables: list[str]) -> dict[str, int]:
    """Exact counts in one round trip; table names are quoted as identifiers by psycopg.sql."""
    if not tables:
        return {}
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}::text, count(*) FROM {}").format(sql.Literal(name), sql.Identifier(name))
        for name in tables
    )
    return dict(conn.execute(query).fetchall())


def format_summary(summary: SchemaSummary) -> str:
    """A plain-text table for the terminal."""
    width = max((len(t.name) for t in summary.tables), default=5)
    lines = [
        f"PostgreSQL {summary.server_version}: {len(summary.tables)} tables, "
        f"{sum(len(t.indexes) for t in summary.tables)} indexes, {len(summary.enums)} enum types",
        "",
        f"{'table':<{width}}  {'rows':>10}  indexes",
    ]
    for table in summary.tables:
        lines.append(f"{table.name:<{width}}  {table.row_count:>10}  {', '.join(table.indexes)}")
    if summary.enums:
        lines.append("")
        lines.extend(f"enum {name}: {', '.join(labels)}" for name, labels in summary.enums.items())
    return "\n".join(lines)
