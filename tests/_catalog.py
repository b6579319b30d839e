"""Catalog queries over schema public that the migration and schema tests share.

yoyo keeps its bookkeeping in the same schema (``_yoyo_migration``, ``_yoyo_log``,
``_yoyo_version``, ``yoyo_lock`` and their row/array types, indexes and sequences); every query
here leaves out names matching ``YOYO_OBJECT``, so what remains is the project's own.
"""

from __future__ import annotations

from typing import Final, LiteralString

import psycopg

__all__ = [
    "APP_ROLE",
    "YOYO_OBJECT",
    "project_objects",
    "role_is_used_elsewhere",
    "schema_snapshot",
    "uncovered_foreign_keys",
]

APP_ROLE: Final = "etlstore_app"
YOYO_OBJECT: Final = "^_*yoyo"

# Each query yields (kind, name, definition) rows; together they describe everything the
# migrations create, in a form that does not depend on OIDs or creation order.
_SNAPSHOT_QUERIES: Final[tuple[LiteralString, ...]] = (
    """
    SELECT 'relation', c.relname, c.relkind::text || ' ' || c.relpersistence::text
        || ' acl=' || coalesce((
            SELECT string_agg(a.grantee::regrole::text || ':' || a.privilege_type, ','
                ORDER BY a.grantee::regrole::text, a.privilege_type)
            FROM aclexplode(c.relacl) AS a), '')
        || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '')
    FROM pg_class AS c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relname !~ %(yoyo)s
    """,
    """
    SELECT 'column', c.relname || '.' || a.attname,
        a.attnum::text || ' ' || format_type(a.atttypid, a.atttypmod)
        || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
        || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text
        || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
        || ' comment=' || coalesce(col_description(c.oid, a.attnum), '')
    FROM pg_attribute AS a
    JOIN pg_class AS c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = 'public'::regnamespace AND c.relname !~ %(yoyo)s
        AND c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped
    """,
    """
    SELECT 'constraint', c.relname || '.' || k.conname, pg_get_constraintdef(k.oid)
        || CASE WHEN k.condeferrable THEN ' deferrable' ELSE '' END
    FROM pg_constraint AS k
    JOIN pg_class AS c ON c.oid = k.conrelid
    WHERE c.relnamespace = 'public'::regnamespace AND c.relname !~ %(yoyo)s
    """,
    """
    SELECT 'index', i.relname, pg_get_indexdef(i.oid)
    FROM pg_index AS x
    JOIN pg_class AS i ON i.oid = x.indexrelid
    JOIN pg_class AS t ON t.oid = x.indrelid
    WHERE t.relnamespace = 'public'::regnamespace AND t.relname !~ %(yoyo)s
    """,
    """
    SELECT 'type', t.typname, t.typtype::text || ' '
        || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                     FROM pg_enum AS e WHERE e.enumtypid = t.oid), '')
        || ' comment=' || coalesce(obj_description(t.oid, 'pg_type'), '')
    FROM pg_type AS t
    WHERE t.typnamespace = 'public'::regnamespace AND t.typname !~ %(yoyo)s
    """,
    """
    SELECT 'function', p.oid::regprocedure::text,
        pg_get_functiondef(p.oid) || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '')
    FROM pg_proc AS p
    WHERE p.pronamespace = 'public'::regnamespace
    """,
    """
    SELECT 'trigger', c.relname || '.' || g.tgname, pg_get_triggerdef(g.oid)
    FROM pg_trigger AS g
    JOIN pg_class AS c ON c.oid = g.tgrelid
    WHERE c.relnamespace = 'public'::regnamespace AND NOT g.tgisinternal
    """,
    """
    SELECT 'schema acl', n.nspname, coalesce((
        SELECT string_agg(a.grantee::regrole::text || ':' || a.privilege_type, ','
            ORDER BY a.grantee::regrole::text, a.privilege_type)
        FROM aclexplode(n.nspacl) AS a WHERE a.grantee <> 0), '')
    FROM pg_namespace AS n
    WHERE n.nspname = 'public'
    """,
)

_PROJECT_OBJECTS: Final = """
    SELECT 'relation ' || relname FROM pg_class
    WHERE relnamespace = 'public'::regnamespace AND relname !~ %(yoyo)s
    UNION ALL
    SELECT 'type ' || typname FROM pg_type
    WHERE typnamespace = 'public'::regnamespace AND typname !~ %(yoyo)s
    UNION ALL
    SELECT 'function ' || oid::regprocedure::text FROM pg_proc
    WHERE pronamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'trigger ' || tgname FROM pg_trigger
    WHERE tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
        AND NOT tgisinternal
    ORDER BY 1
"""

# A foreign key is covered when some valid, non-partial index has exactly the key's columns (in
# any order) as its leading columns: that index finds the referencing rows when the referenced row
# is deleted or its key changes.
_UNCOVERED_FOREIGN_KEYS: Final = """
    SELECT k.conrelid::regclass::text || '.' || k.conname
    FROM pg_constraint AS k
    WHERE k.contype = 'f' AND k.connamespace = 'public'::regnamespace
        AND NOT EXISTS (
            SELECT FROM pg_index AS x
            WHERE x.indrelid = k.conrelid AND x.indisvalid AND x.indpred IS NULL
                AND x.indnkeyatts >= cardinality(k.conkey)
                AND (x.indkey::smallint[])[0:cardinality(k.conkey) - 1] @> k.conkey
                AND (x.indkey::smallint[])[0:cardinality(k.conkey) - 1] <@ k.conkey
        )
    ORDER BY 1
"""

# pg_shdepend records the role's privileges and ownerships in every database of the cluster.
_ROLE_USED_ELSEWHERE: Final = """
    SELECT EXISTS (
        SELECT FROM pg_shdepend AS s
        JOIN pg_roles AS r ON r.oid = s.refobjid AND s.refclassid = 'pg_authid'::regclass
        CROSS JOIN (SELECT oid FROM pg_database WHERE datname = current_database()) AS here
        WHERE r.rolname = %(role)s AND s.dbid <> here.oid
            -- Grants on databases are recorded as shared (dbid 0): only other databases count.
            AND NOT (s.classid = 'pg_database'::regclass AND s.objid = here.oid)
    )
"""


def schema_snapshot(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    """Every project object in schema public with its definition, in a deterministic order."""
    rows: list[tuple[str, str, str]] = []
    for query in _SNAPSHOT_QUERIES:
        rows.extend(conn.execute(query, {"yoyo": YOYO_OBJECT}).fetchall())
    return sorted(rows)


def project_objects(conn: psycopg.Connection) -> list[str]:
    """Relations, types, functions and triggers in schema public that are not yoyo's."""
    return [row[0] for row in conn.execute(_PROJECT_OBJECTS, {"yoyo": YOYO_OBJECT})]


def uncovered_foreign_keys(conn: psycopg.Connection) -> list[str]:
    """Foreign keys (``table.constraint``) whose columns lead no index."""
    return [row[0] for row in conn.execute(_UNCOVERED_FOREIGN_KEYS)]


def role_is_used_elsewhere(conn: psycopg.Connection, role: str = APP_ROLE) -> bool:
    """Whether the role holds privileges or owns objects in another database of the cluster."""
    row = conn.execute(_ROLE_USED_ELSEWHERE, {"role": role}).fetchone()
    return bool(row and row[0])
