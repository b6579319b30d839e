"""Rendering the IR to Python text: pure functions, checked without a database."""

from __future__ import annotations

import ast

from codegen._ir import Column, EnumType, Field, Model, Module, Package, Param, Query, TypeRef
from codegen._render import render_module, render_package

_STATUS = TypeRef("status", "Status", "enum", "Status")
_UUID = TypeRef("uuid", "UUID")
_JSON = TypeRef("jsonb", "dict[str, int]", "json", "dict[str, int]")
_MODEL = Model("Job", "public", "jobs", "A job.", (Field("id", _UUID, False, "The key."),))


def _query(**changes: object) -> Query:
    fields: dict[str, object] = {
        "name": "get_job",
        "operation": "^",
        "line": 3,
        "doc": "Get a job.",
        "sql": "SELECT id, status, extra FROM jobs WHERE id = $1",
        "params": (Param("id", 1, _UUID, False),),
        "columns": (
            Column("id", _UUID, False, "non-null"),
            Column("status", _STATUS, True, "nullable"),
            Column("extra", _JSON, False, "non-null"),
        ),
        "row": "GetJobRow",
        "row_is_model": False,
        "optional": True,
    }
    fields.update(changes)
    return Query(**fields)  # type: ignore[arg-type]


def _package(*queries: Query) -> Package:
    module = Module("jobs", "sql/jobs.sql", queries)
    return Package(
        "pkg", "migrations", (_MODEL,), (EnumType("Status", "status", ("a-b", "c")),), (module,)
    )


def test_every_rendered_file_is_valid_python() -> None:
    for name, text in render_package(_package(_query())).items():
        ast.parse(text, filename=name)


def test_sql_constant_carries_the_query_name_and_source_line() -> None:
    text = render_module(_package(_query()), _package(_query()).modules[0])
    assert 'GET_JOB: Final = """-- get_job (sql/jobs.sql:3)\nSELECT id' in text


def test_rows_convert_enums_and_json_positionally_and_keep_nulls() -> None:
    package = _package(_query())
    text = render_module(package, package.modules[0])
    expected = "GetJobRow(r[0], (None if r[1] is None else Status(r[1])), "
    assert expected + "_DECODE_DICT_STR_INT.decode(r[2]))" in text
    assert "_DECODE_DICT_STR_INT: Final = msgspec.json.Decoder(dict[str, int])" in text
    assert "async def get_job(executor: Executor, *, id: UUID) -> GetJobRow | None:" in text


def test_json_decoders_are_shared_within_a_module() -> None:
    package = _package(_query(), _query(name="get_job_again"))
    text = render_module(package, package.modules[0])
    assert text.count("msgspec.json.Decoder(dict[str, int])") == 1


def test_enum_members_are_upper_case_identifiers() -> None:
    models = render_package(_package(_query()))["models.py"]
    assert "A_B = 'a-b'" in models
    assert '"""The key."""' in models


def test_insert_that_always_returns_raises_instead_of_returning_none() -> None:
    package = _package(_query(operation="<!", optional=False))
    text = render_module(package, package.modules[0])
    assert "-> GetJobRow:" in text
    assert "raise LookupError" in text
