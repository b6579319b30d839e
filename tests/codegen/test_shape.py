"""Statement shapes from syntax alone: one row for certain, INSERT that returns, SELECT *."""

from __future__ import annotations

import pytest
from pglast import ast as pg_ast

from codegen._shape import always_one_row, insert_always_returns, parse_statement, star_offsets


def _stmt(sql: str) -> pg_ast.Node:
    stmt = parse_statement(sql)
    assert stmt is not None
    return stmt


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", True),
        ("SELECT now()", True),
        ("SELECT 1 WHERE $1", False),
        ("SELECT count(*) FROM t WHERE x = $1", True),
        ("SELECT coalesce(sum(x), 0) FROM t", True),
        ("SELECT (SELECT count(*) FROM u) FROM t", False),
        ("SELECT count(*) OVER () FROM t", False),
        ("SELECT count(*) FROM t GROUP BY x", False),
        ("SELECT count(*) FROM t HAVING count(*) > 1", False),
        ("SELECT count(*) FROM t LIMIT $1", False),
        ("SELECT 1 UNION SELECT 2", False),
        ("VALUES (1)", False),
        ("INSERT INTO t (x) VALUES (1) RETURNING x", True),
    ],
)
def test_always_one_row(sql: str, expected: bool) -> None:
    assert always_one_row(_stmt(sql)) is expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("INSERT INTO t (x) VALUES ($1) RETURNING x", True),
        ("INSERT INTO t (x) VALUES ($1) ON CONFLICT (x) DO UPDATE SET x = 1 RETURNING x", True),
        ("INSERT INTO t (x) VALUES ($1) ON CONFLICT DO NOTHING RETURNING x", False),
        ("INSERT INTO t (x) VALUES ($1) ON CONFLICT (x) DO UPDATE SET x = 1 WHERE false", False),
        ("INSERT INTO t (x) SELECT x FROM u RETURNING x", False),
        ("UPDATE t SET x = 1 RETURNING x", False),
        ("DELETE FROM t RETURNING x", False),
    ],
)
def test_insert_always_returns(sql: str, expected: bool) -> None:
    assert insert_always_returns(_stmt(sql)) is expected


def test_star_offsets_find_stars_in_every_output_list_but_not_in_subqueries() -> None:
    sql = "SELECT a FROM t UNION SELECT *\nFROM u"
    assert [sql.encode()[o : o + 1] for o in star_offsets(_stmt(sql))] == [b"*"]
    assert star_offsets(_stmt("SELECT x.a FROM (SELECT * FROM t) x")) == []
    assert len(star_offsets(_stmt("DELETE FROM t RETURNING t.*"))) == 1
    assert star_offsets(_stmt("SELECT count(*) AS n FROM t")) == []


def test_unparseable_or_multiple_statements_have_no_shape() -> None:
    assert parse_statement("SELEC 1") is None
    assert parse_statement("SELECT 1; SELECT 2") is None
