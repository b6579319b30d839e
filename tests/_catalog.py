"""Catalog queries over schema public that the migration and schema tests share.

``schema_snapshot`` is the one ``etlstore drift`` compares with, so the tests hold the schema to
the same canonical form a deploy is checked against.

yoyo keeps its bookkeeping in the same schema (``_yoyo_migration``, ``_yoyo_log``,
``_yoyo_version``, ``yoyo_lock`` and their row/array types, indexes and sequences); every query
here leaves out names matching ``YOYO_OBJECT``, so what remains is the project's own.
"""

from __future__ import annotations

from typing import Final

import psycopg

from etlstore._drift import schema_snapshot

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
