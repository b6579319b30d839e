"""``etlstore drift``: the live schema against the schema the migrations produce.

The migrations are applied to a throwaway database on the same server (or on ``reference_dsn``'s
server); both catalogs are read into canonical snapshots (no OIDs, no creation order) and
compared. Unknown, missing and changed objects are drift, and so is any invalid index (left by a
failed ``CREATE INDEX CONCURRENTLY``, which a rerun with ``IF NOT EXISTS`` would not repair).
yoyo's tables and etlstore's deploy bookkeeping (schema ``etlstore_deploy``) are left out, and so
are partitions: they come and go with time (``etlstore partitions maintain``), and a partitioned
table's definition covers theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, LiteralString

import psycopg

from etlstore._config import asyncpg_dsn, throwaway_database
from etlstore._migrations import apply_migrations

__all__ = ["Drift", "find_drift", "schema_snapshot"]

Snapshot = dict[tuple[str, str], str]

_SCHEMAS: Final = """
    SELECT array_agg(oid) FROM pg_namespace
    WHERE nspname !~ '^pg_' AND nspname NOT IN ('information_schema', 'etlstore_deploy')
"""

# Each yields (kind, name, definition); names are schema-qualified outside the search path.
_SNAPSHOT_QUERIES: Final[tuple[LiteralString, ...]] = (
    """
    SELECT 'schema', nspname, coalesce(nspacl::text, '') FROM pg_namespace
    WHERE oid = ANY(%(schemas)s) AND nspname <> 'public'
    """,
    "SELECT 'extension', extname, extversion FROM pg_extension WHERE extname <> 'plpgsql'",
    """
    SELECT 'relation', c.oid::regclass::text, c.relkind::text || ' ' || c.relpersistence::text
        || ' acl=' || coalesce((
            SELECT string_agg(a.grantee::regrole::text || ':' || a.privilege_type, ','
                ORDER BY a.grantee::regrole::text, a.privilege_type)
            FROM aclexplode(c.relacl) AS a), '')
        || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '')
        || CASE WHEN c.relkind IN ('v', 'm') THEN ' ' || pg_get_viewdef(c.oid) ELSE '' END
    FROM pg_class AS c
    WHERE c.relnamespace = ANY(%(schemas)s) AND c.relname !~ '^_*yoyo'
        AND c.relkind NOT IN ('i', 'I') AND NOT c.relispartition
    """,
    """
    SELECT 'column', c.oid::regclass::text || '.' || a.attname,
        a.attnum::text || ' ' || format_type(a.atttypid, a.atttypmod)
        || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
        || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text
        || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
        || ' comment=' || coalesce(col_description(c.oid, a.attnum), '')
    FROM pg_attribute AS a
    JOIN pg_class AS c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped
        AND NOT c.relispartition AND c.relnamespace
        = ANY(%(schemas)s) AND c.relname !~ '^_*yoyo'
    """,
    """
    SELECT 'constraint', k.conrelid::regclass::text || '.' || k.conname,
        pg_get_constraintdef(k.oid) || CASE WHEN k.condeferrable THEN ' deferrable' ELSE '' END
        || CASE WHEN k.convalidated THEN '' ELSE ' not valid' END
    FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid
    -- conparentid: a foreign key to a partitioned table has one such copy per partition.
    WHERE NOT c.relispartition AND k.conparentid = 0 AND c.relnamespace
        = ANY(%(schemas)s) AND c.relname !~ '^_*yoyo'
    """,
    """
    SELECT 'index', x.indexrelid::regclass::text, pg_get_indexdef(x.indexrelid)
        || ' comment=' || coalesce(obj_description(x.indexrelid, 'pg_class'), '')
    FROM pg_index AS x JOIN pg_class AS t ON t.oid = x.indrelid
    WHERE NOT t.relispartition AND t.relnamespace
        = ANY(%(schemas)s) AND t.relname !~ '^_*yoyo'
    """,
    """
    SELECT 'type', t.oid::regtype::text, t.typtype::text || ' '
        || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                     FROM pg_enum AS e WHERE e.enumtypid = t.oid), '')
        || ' comment=' || coalesce(obj_description(t.oid, 'pg_type'), '')
    FROM pg_type AS t
    WHERE t.typname !~ '^_*yoyo' AND t.typnamespace = ANY(%(schemas)s)
        -- Row types of tables and array types come with what they belong to.
        AND t.typcategory <> 'A'
        AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
    """,
    """
    SELECT 'function', p.oid::regprocedure::text,
        pg_get_functiondef(p.oid) || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '')
        || ' acl=' || coalesce(p.proacl::text, '')
    FROM pg_proc AS p WHERE p.pronamespace = ANY(%(schemas)s) AND p.prokind IN ('f', 'p')
    """,
    """
    SELECT 'trigger', g.tgrelid::regclass::text || '.' || g.tgname, pg_get_triggerdef(g.oid)
    FROM pg_trigger AS g JOIN pg_class AS c ON c.oid = g.tgrelid
    WHERE NOT g.tgisinternal AND NOT c.relispartition AND c.relnamespace = ANY(%(schemas)s)
    """,
    """
    SELECT 'policy', y.polrelid::regclass::text || '.' || y.polname,
        y.polcmd::text || ' ' || coalesce(pg_get_expr(y.polqual, y.polrelid), '')
        || ' ' || coalesce(pg_get_expr(y.polwithcheck, y.polrelid), '')
    FROM pg_policy AS y JOIN pg_class AS c ON c.oid = y.polrelid
    WHERE c.relnamespace = ANY(%(schemas)s)
    """,
    """
    SELECT 'schema acl', 'public', coalesce((
        SELECT string_agg(a.grantee::regrole::text || ':' || a.privilege_type, ','
            ORDER BY a.grantee::regrole::text, a.privilege_type)
        FROM aclexplode(n.nspacl) AS a WHERE a.grantee <> 0), '')
    FROM pg_namespace AS n WHERE n.nspname = 'public'
    """,
)
_INVALID_INDEXES: Final = """
    SELECT x.indexrelid::regclass::text FROM pg_index AS x
    WHERE NOT x.indisvalid OR NOT x.indisready
    ORDER BY 1
"""


@dataclass(frozen=True, slots=True)
class Drift:
    """How the live schema differs from the migrations' schema; empty when it does not."""

    unknown: list[str]
    missing: list[str]
    changed: list[tuple[str, str, str]]
    invalid_indexes: list[str]

    def __bool__(self) -> bool:
        return bool(self.unknown or self.missing or self.changed or self.invalid_indexes)

    def report(self) -> str:
        """A diff for people: one line per object, ``+`` unknown, ``-`` missing, ``~`` changed."""
        if not self:
            return "no drift: the live schema is what the migrations produce"
        lines = [f"+ {name} (not made by the migrations)" for name in self.unknown]
        lines += [f"- {name} (missing)" for name in self.missing]
        for name, expected, actual in self.changed:
            lines += [f"~ {name}", f"    expected: {expected}", f"    live:     {actual}"]
        lines += [
            f"! index {name} is invalid (drop it and rebuild)" for name in self.invalid_indexes
        ]
        return "\n".join(lines)


def schema_snapshot(conn: psycopg.Connection[Any]) -> Snapshot:
    """Every object of the database's own schemas, keyed by (kind, name), with its definition."""
    row = conn.execute(_SCHEMAS).fetchone()
    params = {"schemas": row[0] if row else []}
    snapshot: Snapshot = {}
    for query in _SNAPSHOT_QUERIES:
        for kind, name, definition in conn.execute(query, params):
            snapshot[(kind, name)] = " ".join(definition.split())
    return snapshot


def find_drift(
    dsn: str, migrations_dir: Path | None = None, *, reference_dsn: str | None = None
) -> Drift:
    """Apply the migrations to a throwaway database and compare its catalog with the live one.

    The throwaway database is made on ``reference_dsn``'s server (default: the live server), by
    its user, who needs CREATEDB; it is dropped afterwards.
    """
    live_dsn = asyncpg_dsn(dsn)
    with psycopg.connect(live_dsn) as conn:
        live = schema_snapshot(conn)
        invalid = [row[0] for row in conn.execute(_INVALID_INDEXES)]
    with throwaway_database(asyncpg_dsn(reference_dsn or dsn), "etlstore_drift") as reference_db:
        apply_migrations(reference_db, migrations_dir)
        with psycopg.connect(reference_db) as conn:
            expected = schema_snapshot(conn)
    return Drift(
        unknown=sorted(" ".join(key) for key in live.keys() - expected.keys()),
        missing=sorted(" ".join(key) for key in expected.keys() - live.keys()),
        changed=sorted(
            (" ".join(key), expected[key], live[key])
            for key in live.keys() & expected.keys()
            if live[key] != expected[key]
        ),
        invalid_indexes=invalid,
    )
