"""Analysis on a live database: the schema, type resolution, one-row shapes, error lines."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from codegen._analyze import analyze_database
from codegen._catalog import class_name, load_schema
from codegen._ir import Package
from codegen._parse import SourceError, parse_file

_SCHEMA = """
CREATE TYPE mood AS ENUM ('happy', 'sad', 'so-so', '1st');
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TYPE point2 AS (x float8, y float8);
CREATE TABLE statuses (id positive PRIMARY KEY, moods mood[] NOT NULL, at point2, note text);
COMMENT ON TABLE statuses IS 'Moods over time.';
"""


@pytest.fixture(scope="module")
def schema_dsn(make_database: Callable[[], str]) -> str:
    dsn = make_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_SCHEMA)
    return dsn


def _analyze(dsn: str, text: str) -> tuple[Package, list[SourceError]]:
    parsed, errors = parse_file(text, "sql/s.sql", "s")
    assert errors == []
    with psycopg.connect(dsn, autocommit=True) as conn:
        return analyze_database(conn, [parsed], "pkg")


@pytest.mark.parametrize(
    ("name", "singular", "expected"),
    [
        ("pipelines", True, "Pipeline"),
        ("pipeline_executions", True, "PipelineExecution"),
        ("component_dependencies", True, "ComponentDependency"),
        ("dataclasses", True, "Dataclass"),
        ("statuses", True, "Status"),
        ("audit_log", True, "AuditLog"),
        ("get_pipeline", False, "GetPipeline"),
    ],
)
def test_class_names_are_camel_case_and_tables_singular(
    name: str, singular: bool, expected: str
) -> None:
    assert class_name(name, singular=singular) == expected


def test_schema_resolves_domains_enum_arrays_and_composites(schema_dsn: str) -> None:
    with psycopg.connect(schema_dsn, autocommit=True) as conn:
        info, _ = load_schema(conn)
    models = {m.name: m for m in info.models}
    status = models["Status"]
    assert status.doc == "Moods over time."
    assert [(f.name, f.type.py, f.type.kind, f.nullable) for f in status.fields] == [
        ("id", "int", "plain", False),
        ("moods", "list[Mood]", "enum_array", False),
        ("at", "Point2", "composite", True),
        ("note", "str", "plain", True),
    ]
    assert [f.nullable for f in models["Point2"].fields] == [True, True]
    assert [(e.name, e.values) for e in info.enums] == [("Mood", ("happy", "sad", "so-so", "1st"))]


@pytest.mark.parametrize(
    ("sql", "optional"),
    [
        ("SELECT count(*) AS n FROM statuses", False),
        ("SELECT count(*) AS n FROM statuses GROUP BY note", True),
        ("SELECT 1 AS one", False),
        ("SELECT 1 AS one WHERE false", True),
        ("SELECT id AS n FROM statuses LIMIT 1", True),
        ("SELECT max(id) AS n FROM statuses", True),
    ],
)
def test_value_queries_are_optional_unless_one_non_null_row_is_certain(
    schema_dsn: str, sql: str, optional: bool
) -> None:
    package, errors = _analyze(schema_dsn, f"-- name: v()$\n{sql}\n")
    assert errors == []
    assert package.modules[0].queries[0].optional is optional


def test_parameters_take_their_types_from_the_server(schema_dsn: str) -> None:
    package, errors = _analyze(
        schema_dsn,
        "-- name: f(ids, moods, note)\n-- @nullable note\n"
        "SELECT id FROM statuses WHERE id = ANY(:ids) AND moods && :moods AND note = :note\n",
    )
    assert errors == []
    params = package.modules[0].queries[0].params
    assert [(p.name, p.type.py, p.nullable) for p in params] == [
        ("ids", "Sequence[int]", False),
        ("moods", "Sequence[Mood]", False),
        ("note", "str", True),
    ]


def test_server_errors_point_at_the_line_and_name_the_parameter(schema_dsn: str) -> None:
    _, errors = _analyze(
        schema_dsn,
        "-- name: a()\nSELECT id\nFROM statuses\nWHERE nope = 1\n\n"
        "-- name: b(x)$\nSELECT :x IS NULL AS missing\n",
    )
    assert [str(e) for e in errors] == [
        'sql/s.sql:4: a: column "nope" does not exist (hint: Perhaps you meant to reference '
        'the column "statuses.note".)',
        "sql/s.sql:6: b: could not determine data type of parameter :x",
    ]


def test_result_columns_need_python_names_and_must_be_distinct(schema_dsn: str) -> None:
    _, errors = _analyze(schema_dsn, "-- name: c()\nSELECT id, id FROM statuses\n")
    assert [e.message for e in errors] == [
        "c: two result columns are named id; give them distinct aliases"
    ]
