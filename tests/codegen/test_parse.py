"""Reading aiosql-format SQL files: headers, docs, directives, parameters, lines and errors."""

from __future__ import annotations

from pathlib import Path

import aiosql
import pytest
from aiosql.utils import SQLParseException

from codegen._parse import ParsedQuery, SourceError, parse_file, parse_sql_dir, to_positional
from tests.codegen.casekit import CASES, case_names


def _parse(text: str) -> tuple[list[ParsedQuery], list[str]]:
    parsed, errors = parse_file(text, "sql/q.sql", "q")
    return list(parsed.queries), [str(e) for e in errors]


def test_named_params_become_positional_in_first_appearance_order() -> None:
    sql, names, _ = to_positional("SELECT :b, :a, :b")
    assert (sql, names) == ("SELECT $1, $2, $1", ("b", "a"))


def test_casts_strings_comments_and_dollar_quotes_are_not_params() -> None:
    text = "SELECT x::int, ':s', $$ :d $$, E'\\' :e' -- :c\nFROM t /* :b */ WHERE y = :y"
    sql, names, _ = to_positional(text)
    assert names == ("y",)
    assert sql == text.replace(":y", "$1")


def test_keyword_named_params_are_params() -> None:
    assert to_positional("SELECT 1 LIMIT :limit")[:2] == ("SELECT 1 LIMIT $1", ("limit",))


def test_header_doc_and_directives_are_read() -> None:
    queries, errors = _parse(
        "-- name: get_x(id, note)^\n-- Get x.\n-- More.\n-- @nullable note\n\nSELECT :id, :note\n"
    )
    assert errors == []
    query = queries[0]
    assert (query.name, query.operation, query.line, query.sql_line) == ("get_x", "^", 1, 6)
    assert query.doc == "Get x.\nMore."
    assert [(d.name, d.argument, d.line) for d in query.directives] == [("nullable", "note", 4)]


def test_comment_lines_inside_the_statement_stay_sql() -> None:
    queries, _ = _parse("-- name: q()\n-- Doc.\nSELECT 1 AS a\n-- not doc\nFROM t\n")
    assert queries[0].doc == "Doc."
    assert "-- not doc" in queries[0].sql


def test_line_numbers_survive_block_comments() -> None:
    text = "/* a\nlong\ncomment */\n-- name: q(a)\nSELECT\n  :b\n"
    _, errors = _parse(text)
    assert errors == [
        "sql/q.sql:6: q: parameter :b is not declared in the header",
        "sql/q.sql:4: q: declared parameter a is never used",
    ]


def test_dashes_in_names_become_underscores_as_in_aiosql() -> None:
    queries, _ = _parse("-- name: get-x()$\nSELECT 1 AS one\n")
    assert queries[0].name == "get_x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- name: 1bad()\nSELECT 1\n", "invalid query header '1bad()'"),
        ("-- name: q()\n", "query q has no SQL statement"),
        ("-- name: q()\n-- @typo x\nSELECT 1\n", "unknown directive @typo in q"),
        ("-- name: q()\nSELECT $1\n", "q: use named :parameters, not $n placeholders"),
        ("-- name: q(class)\nSELECT :class\n", "q: parameter name 'class' is reserved"),
        ("-- name: q\nSELECT :a\n", "q: declare its parameters"),
    ],
)
def test_mistakes_are_reported_against_the_file(text: str, message: str) -> None:
    _, errors = _parse(text)
    assert len(errors) == 1
    assert errors[0].split(": ", 1)[1].startswith(message)


def test_insert_returning_and_many_need_no_param_list() -> None:
    queries, errors = _parse("-- name: add*!\nINSERT INTO t VALUES (:a)\n")
    assert errors == []
    assert queries[0].params == ("a",)


def test_duplicate_names_across_files_are_errors(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("-- name: q()\nSELECT 1 AS x\n")
    (tmp_path / "b.sql").write_text("\n-- name: q()\nSELECT 2 AS x\n")
    files, errors = parse_sql_dir(tmp_path, "sql")
    assert [f.stem for f in files] == ["a", "b"]
    assert errors == [
        SourceError("sql/b.sql", 2, "duplicate query name q (first defined at sql/a.sql:1)")
    ]


def test_a_missing_directory_has_no_queries(tmp_path: Path) -> None:
    assert parse_sql_dir(tmp_path / "absent", "sql") == ([], [])


# aiosql's regular expression takes `:name` inside dollar-quoted strings for a parameter.
_AIOSQL_MISREADS = "comments_and_strings_are_not_params"


def test_aiosql_misreads_params_in_dollar_quotes_which_we_do_not() -> None:
    with pytest.raises(SQLParseException, match="also_skip"):
        aiosql.from_path(CASES / _AIOSQL_MISREADS / "sql", "asyncpg")
    assert parse_sql_dir(CASES / _AIOSQL_MISREADS / "sql", "sql")[1] == []


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in case_names()
        if not (CASES / c / "expected" / "errors.txt").exists() and c != _AIOSQL_MISREADS
    ],
)
def test_every_accepted_case_also_loads_with_aiosql(case: str) -> None:
    queries = aiosql.from_path(CASES / case / "sql", "asyncpg")
    names = {name for name in queries.available_queries if "." not in name}
    files, errors = parse_sql_dir(CASES / case / "sql", "sql")
    assert errors == []
    assert {q.name for f in files for q in f.queries} <= names
