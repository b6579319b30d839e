"""No SQL text is built at run time anywhere in src/: the static check, and proof it can fail."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.security._sql_check import check_tree, main


def _findings(tmp_path: Path, source: str, **modules: str) -> list[str]:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text(textwrap.dedent(source))
    for name, text in modules.items():
        (package / f"{name}.py").write_text(textwrap.dedent(text))
    return [str(f).removeprefix(f"{tmp_path}/") for f in check_tree(tmp_path)]


def test_src_builds_no_sql_at_run_time() -> None:
    assert [str(f) for f in check_tree(REPO / "src")] == []


@pytest.mark.parametrize(
    ("statement", "shown"),
    [
        ('await con.execute(f"DELETE FROM {table}")', "JoinedStr"),
        ('await con.fetch("SELECT * FROM " + table)', "BinOp"),
        ('await con.fetchrow("SELECT %s" % table)', "BinOp"),
        ('await con.fetchval("SELECT {}".format(table))', "Call"),
        ("await con.executemany(table, [])", "Name"),
        ('await con.prepare(query=f"{table}")', "JoinedStr"),
        ('con.cursor(" ".join([table]))', "Call"),
        ('await con.copy_from_query("COPY (SELECT " + table + ") TO STDOUT")', "BinOp"),
    ],
)
def test_sql_built_from_strings_is_reported_with_path_and_line(
    tmp_path: Path, statement: str, shown: str
) -> None:
    source = f"""
        async def purge(con, name):
            table = name.strip()
            {statement}
    """
    [finding] = _findings(tmp_path, source)
    assert finding.startswith("pkg/mod.py:4: SQL passed to ")
    assert f"is not a constant string ({shown}: " in finding


def test_constants_imported_constants_and_quoted_identifiers_pass(tmp_path: Path) -> None:
    source = """
        from typing import Final
        from psycopg import sql
        from .queries import GET_X
        from . import queries

        _COUNT: Final = "SELECT count(*) FROM x"
        _ALL: Final = (_COUNT, "SELECT 2")

        async def run(con, names, flag):
            one = _COUNT if flag else "SELECT 1"
            await con.fetchval(one)
            for query in _ALL:
                await con.fetch(query)
            await con.fetchrow(GET_X, 1)
            await con.fetch(queries.GET_X, 2)
            con.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(names[0])))
            con.execute(
                sql.SQL(" UNION ALL ").join(
                    sql.SQL("SELECT {} FROM {}").format(sql.Literal(n), sql.Identifier(n))
                    for n in names
                )
            )
    """
    assert _findings(tmp_path, source, queries='GET_X = "SELECT x FROM x WHERE id = $1"\n') == []


def test_a_constant_reassigned_built_from_parts_or_looped_from_input_is_not_constant(
    tmp_path: Path,
) -> None:
    source = """
        _SQL = "SELECT 1"
        _SQL = "SELECT 2"
        _PARTS = "SELECT " + "1"

        async def run(con, names):
            await con.execute(_SQL)
            await con.execute(_PARTS)
            for name in names:
                await con.execute(name)
    """
    assert [f.split(": SQL")[0] for f in _findings(tmp_path, source)] == [
        "pkg/mod.py:7",
        "pkg/mod.py:8",
        "pkg/mod.py:10",
    ]


def test_a_function_forwarding_sql_has_its_callers_checked(tmp_path: Path) -> None:
    source = """
        _OK = "SELECT 1"

        def statement(sql, *args):
            async def run(db):
                return await db.execute(sql, *args)
            return run

        def chunks(label, sql):
            return [statement(sql, 1)]

        class Wrapper:
            async def fetch(self, query):
                return await self._run(query, lambda con: con.fetch(query))

        def plan(db, table):
            chunks("fine", _OK)
            chunks("bad", f"TRUNCATE {table}")
            return Wrapper().fetch("SELECT " + table)
    """
    findings = _findings(tmp_path, source)
    assert [f.split(": ", 1)[0] for f in findings] == ["pkg/mod.py:18", "pkg/mod.py:19"]
    assert "chunks() forwards sql as SQL" in findings[0]


def test_the_command_prints_findings_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.py").write_text('def f(con, t):\n    con.execute(f"DROP {t}")\n')
    assert main([str(tmp_path)]) == 1
    assert capsys.readouterr().out.startswith(f"{tmp_path}/bad.py:2: SQL passed to execute()")
    assert main([str(REPO / "src")]) == 0
