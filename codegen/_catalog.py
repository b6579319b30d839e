"""What the migrated database holds: tables, views, composite types, enums, and Python types.

Read once per run from pg_catalog after the migrations are applied; the statement analysis then
resolves every type OID the server reports through ``TypeResolver``.
"""

from __future__ import annotations

import keyword
import re

import msgspec
import psycopg

from codegen._ir import EnumType, Field, Model, TypeRef

__all__ = [
    "Catalog",
    "CatalogColumn",
    "CatalogTable",
    "SchemaInfo",
    "TypeResolver",
    "class_name",
    "load_schema",
    "python_name",
]

# Tables yoyo keeps its bookkeeping in: not part of the user's schema.
_YOYO_TABLE = re.compile(r"^(_yoyo_.*|yoyo_lock)$")

# Base types by name, as asyncpg returns and accepts them. Base types not listed here are
# exchanged as text by asyncpg, hence ``str``.
_BASE_TYPES: dict[str, str] = {
    "bool": "bool",
    "int2": "int",
    "int4": "int",
    "int8": "int",
    "oid": "int",
    "float4": "float",
    "float8": "float",
    "numeric": "Decimal",
    "uuid": "UUID",
    "date": "date",
    "timestamp": "datetime",
    "timestamptz": "datetime",
    "time": "time",
    "timetz": "time",
    "interval": "timedelta",
    "bytea": "bytes",
    "inet": "IPv4Interface | IPv6Interface | IPv4Address | IPv6Address",
    "cidr": "IPv4Network | IPv6Network",
    "record": "Record",
    "void": "None",
    "bit": "BitString",
    "varbit": "BitString",
    "point": "Point",
    "box": "Box",
    "line": "Line",
    "lseg": "LineSegment",
    "path": "Path",
    "polygon": "Polygon",
    "circle": "Circle",
}
_JSON_TYPES = ("json", "jsonb")


class CatalogColumn(msgspec.Struct, frozen=True):
    """A column as the nullability analysis sees it."""

    name: str
    not_null: bool


class CatalogTable(msgspec.Struct, frozen=True):
    schema: str
    name: str
    columns: tuple[CatalogColumn, ...]
    """In attnum order, dropped columns excluded."""


class Catalog(msgspec.Struct, frozen=True):
    """Every table and view of the database, for codegen._nullability (see contracts.md)."""

    tables: tuple[CatalogTable, ...]
    search_path: tuple[str, ...] = ("public",)

    def find(self, schema: str | None, name: str) -> CatalogTable | None:
        """The table ``schema.name``, or the first ``name`` along the search path."""
        schemas = (schema,) if schema else self.search_path
        for candidate in schemas:
            for table in self.tables:
                if table.schema == candidate and table.name == name:
                    return table
        return None


class _PgType(msgspec.Struct, frozen=True):
    oid: int
    name: str
    typtype: str
    element: int
    base: int
    relid: int


class SchemaInfo(msgspec.Struct, frozen=True):
    """The user's schema: models (tables first), enums and the raw facts analysis needs."""

    models: tuple[Model, ...]
    enums: tuple[EnumType, ...]
    relations: dict[int, Model]
    """Model by pg_class OID (tables, views and composite types)."""
    not_null: dict[int, tuple[bool, ...]]
    """NOT NULL of each column, in attnum order, by pg_class OID."""
    kinds: dict[int, str]
    """relkind by pg_class OID."""
    types: dict[int, _PgType]


_PLURALS = (
    ("ies", "y"),
    ("uses", "us"),
    ("sses", "ss"),
    ("xes", "x"),
    ("ches", "ch"),
    ("shes", "sh"),
)


def _singular(word: str) -> str:
    for plural, single in _PLURALS:
        if word.endswith(plural) and len(word) > len(plural) + 1:
            return word[: -len(plural)] + single
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def class_name(name: str, *, singular: bool = False) -> str:
    """CamelCase of a snake_case name; ``singular`` turns the last word singular (tables)."""
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]
    if singular and words:
        words[-1] = _singular(words[-1])
    camel = "".join(w[:1].upper() + w[1:] for w in words) or "Unnamed"
    return camel if camel[0].isalpha() else f"T{camel}"


def python_name(name: str) -> str:
    """A column name as a Python attribute: keywords get a trailing underscore."""
    cleaned = re.sub(r"\W", "_", name)
    if not cleaned or cleaned[0].isdigit():
        cleaned = f"c_{cleaned}"
    return f"{cleaned}_" if keyword.iskeyword(cleaned) else cleaned


class TypeResolver:
    """Python types for PostgreSQL type OIDs (arrays, domains, enums and composites included)."""

    def __init__(self, types: dict[int, _PgType], enums: dict[int, str], models: dict[int, str]):
        self._types = types
        self._enums = enums
        self._models = models

    def resolve(self, oid: int, *, parameter: bool = False) -> TypeRef:
        pg = self._types.get(oid)
        if pg is None:
            return TypeRef(str(oid), "object")
        if pg.typtype == "d":
            base = self.resolve(pg.base, parameter=parameter)
            return TypeRef(pg.name, base.py, base.kind, base.target)
        if pg.typtype == "e":
            enum = self._enums[oid]
            return TypeRef(pg.name, enum, "enum", enum)
        if pg.typtype == "c" and pg.relid in self._models:
            model = self._models[pg.relid]
            return TypeRef(pg.name, model, "composite", model)
        if pg.element and pg.name.startswith("_"):
            element = self.resolve(pg.element, parameter=parameter)
            container = "Sequence" if parameter else "list"
            if element.kind == "enum":
                return TypeRef(pg.name, f"{container}[{element.py}]", "enum_array", element.py)
            if element.kind in ("json", "composite"):
                # asyncpg hands these over undecoded; so do we.
                return TypeRef(
                    pg.name,
                    f"{container}[str]" if element.kind == "json" else f"{container}[Record]",
                )
            return TypeRef(pg.name, f"{container}[{element.py}]")
        if pg.name in _JSON_TYPES:
            return TypeRef(pg.name, "object", "json", "object")
        return TypeRef(pg.name, _BASE_TYPES.get(pg.name, "str"))


_RELATIONS_SQL = """
SELECT c.oid::int, n.nspname, c.relname, c.relkind::text,
       coalesce(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'c')
  -- A query names the partitioned table; its partitions come and go with time.
  AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY c.relkind = 'c', n.nspname, c.relname
"""
_COLUMNS_SQL = """
SELECT a.attrelid::int, a.attname, a.atttypid::int, a.attnotnull,
       coalesce(col_description(a.attrelid, a.attnum), '')
FROM pg_attribute a
WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""
_TYPES_SQL = """
SELECT t.oid::int, t.typname, t.typtype::text, t.typelem::int, t.typbasetype::int, t.typrelid::int
FROM pg_type t
"""
_ENUMS_SQL = """
SELECT e.enumtypid::int, t.typname, n.nspname, array_agg(e.enumlabel ORDER BY e.enumsortorder)
FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid JOIN pg_namespace n ON n.oid = t.typnamespace
GROUP BY e.enumtypid, t.typname, n.nspname
ORDER BY n.nspname, t.typname
"""


def _qualified(schema: str, name: str) -> str:
    return name if schema == "public" else f"{schema}_{name}"


def load_schema(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[SchemaInfo, TypeResolver]:
    """Read the schema of the connected database."""
    types = {
        int(str(row[0])): _PgType(*row)  # type: ignore[arg-type]
        for row in conn.execute(_TYPES_SQL).fetchall()
    }
    enum_rows = conn.execute(_ENUMS_SQL).fetchall()
    enums: list[EnumType] = []
    enum_names: dict[int, str] = {}
    for oid, name, schema, labels in enum_rows:
        class_ = class_name(_qualified(str(schema), str(name)))
        enum_names[int(str(oid))] = class_
        enums.append(EnumType(class_, str(name), tuple(str(v) for v in labels)))  # type: ignore[attr-defined]
    relations = [
        r for r in conn.execute(_RELATIONS_SQL).fetchall() if not _YOYO_TABLE.match(str(r[2]))
    ]
    model_names = {
        int(str(oid)): class_name(_qualified(str(schema), str(name)), singular=kind != "c")
        for oid, schema, name, kind, _ in relations
    }
    resolver = TypeResolver(types, enum_names, model_names)
    columns: dict[int, list[tuple[object, ...]]] = {}
    oids = list(model_names)
    for row in conn.execute(_COLUMNS_SQL, (oids,)).fetchall():
        columns.setdefault(int(str(row[0])), []).append(row)
    models: dict[int, Model] = {}
    not_null: dict[int, tuple[bool, ...]] = {}
    kinds: dict[int, str] = {}
    for oid_, schema, name, kind, comment in relations:
        oid = int(str(oid_))
        kinds[oid] = str(kind)
        rows = columns.get(oid, [])
        nullable_always = kind == "c"
        fields = tuple(
            Field(
                python_name(str(col)),
                resolver.resolve(int(str(type_oid))),
                nullable_always or not bool(is_not_null),
                str(doc),
                str(col) if python_name(str(col)) != col else "",
            )
            for _, col, type_oid, is_not_null, doc in rows
        )
        noun = {"r": "table", "p": "table", "v": "view", "m": "materialized view"}.get(
            str(kind), "composite type"
        )
        models[oid] = Model(
            model_names[oid],
            str(schema),
            str(name),
            str(comment) or f"A row of the {noun} {_qualified(str(schema), str(name))}.",
            fields,
        )
        not_null[oid] = tuple(bool(r[3]) for r in rows)
    info = SchemaInfo(tuple(models.values()), tuple(enums), models, not_null, kinds, types)
    return info, resolver
