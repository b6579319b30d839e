"""The intermediate form between analysis and rendering: plain msgspec Structs, dumpable to JSON.

Everything the renderer needs is decided here, so that golden tests can pin the analysis (as JSON)
apart from the text that is rendered from it.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "Column",
    "CopySpec",
    "EnumType",
    "Field",
    "Model",
    "Module",
    "Package",
    "Param",
    "Query",
    "TypeRef",
]

# How a value crosses from asyncpg to Python: as asyncpg returns it, decoded from JSON text,
# wrapped in a generated StrEnum (or a list of them), or built from a composite Record.
TypeKind = Literal["plain", "json", "enum", "enum_array", "composite"]


class TypeRef(msgspec.Struct, frozen=True, omit_defaults=True):
    """A PostgreSQL type and the Python type it is read and written as."""

    pg: str
    py: str
    """The annotation without ``| None``: ``UUID``, ``list[int]``, ``PipelineStatus``."""
    kind: TypeKind = "plain"
    target: str = ""
    """json: the type decoded into; enum/enum_array: the StrEnum; composite: the model."""


class Field(msgspec.Struct, frozen=True, omit_defaults=True):
    """One attribute of a generated Struct."""

    name: str
    type: TypeRef
    nullable: bool
    doc: str = ""
    pg_name: str = ""
    """The column's own name when ``name`` had to differ from it (a Python keyword)."""


class Model(msgspec.Struct, frozen=True):
    """The Struct of one table, view or composite type, in models.py."""

    name: str
    schema: str
    table: str
    doc: str
    fields: tuple[Field, ...]


class EnumType(msgspec.Struct, frozen=True):
    """One PostgreSQL enum as a StrEnum: members in the enum's sort order."""

    name: str
    pg_name: str
    values: tuple[str, ...]


class Param(msgspec.Struct, frozen=True):
    """One keyword-only parameter; ``position`` is its ``$n``."""

    name: str
    position: int
    type: TypeRef
    nullable: bool


class Column(msgspec.Struct, frozen=True):
    """One result column with the reason for its nullability (for ``--explain``)."""

    name: str
    type: TypeRef
    nullable: bool
    reason: str


class CopySpec(msgspec.Struct, frozen=True):
    """A ``COPY table (columns) FROM STDIN`` query: rows in, count out."""

    schema: str
    table: str
    fields: tuple[Field, ...]


class Query(msgspec.Struct, frozen=True, omit_defaults=True):
    """One generated function and its SQL constant."""

    name: str
    operation: str
    """aiosql's suffix: "" (rows), "^", "$", "!", "<!", "*!" or "#"."""
    line: int
    doc: str
    sql: str
    params: tuple[Param, ...]
    columns: tuple[Column, ...]
    row: str
    """The row class: a model's name, ``<Query>Row``, or "" when nothing is returned."""
    row_is_model: bool
    optional: bool
    """Whether ^, $ and <! may return None (no row, or a NULL value for $)."""
    copy: CopySpec | None = None


class Module(msgspec.Struct, frozen=True):
    """The queries of one SQL file."""

    stem: str
    source: str
    """The SQL file as named in headers and errors: ``sql/<stem>.sql``."""
    queries: tuple[Query, ...]


class Package(msgspec.Struct, frozen=True):
    """Everything one run generates."""

    package: str
    migrations: str
    """The migrations directory as named in the models' header: ``migrations``."""
    models: tuple[Model, ...]
    enums: tuple[EnumType, ...]
    modules: tuple[Module, ...]
