"""Static types of the generated API, checked by mypy --strict on reveal_type() lines.

Built from the golden cases' expected modules (so no database is needed): a get returns
``Pipeline | None``, never ``Any``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from codegen._render import render_executor
from codegen._write import _LINT_SELECT, format_sources
from tests.codegen.casekit import CASES, case_names

_SRC = Path(__file__).resolve().parents[2] / "src"
# (case, expression, revealed type) - package names are the case names.
_EXPECTATIONS = [
    (
        "get_returns_table_model",
        "get_pipeline(e, id=u)",
        "get_returns_table_model.models.Pipeline | None",
    ),
    (
        "select_many_rows",
        "list_pipelines(e, after_name='', page_size=1)",
        "list[select_many_rows.queries.ListPipelinesRow]",
    ),
    ("value_count_is_non_null", "count_pipelines(e)", "int"),
    ("value_aggregate_is_nullable", "latest_finish(e)", "datetime.datetime | None"),
    ("value_may_find_no_row", "get_pipeline_name(e, id=u)", "str | None"),
    (
        "insert_returning_always_returns",
        "create_pipeline(e, name='n', description=None)",
        "insert_returning_always_returns.models.Pipeline",
    ),
    (
        "update_returning_is_optional",
        "rename_pipeline(e, id=u, name='n')",
        "update_returning_is_optional.queries.RenamePipelineRow | None",
    ),
    ("exec_returns_rows_affected", "delete_pipeline(e, id=u)", "int"),
    ("copy_bulk_rows_in_count_out", "copy_metrics(e, records=[])", "int"),
    ("executemany_takes_param_structs", "add_metrics(e, params=[])", "None"),
    (
        "enums_in_results_and_params",
        "statuses_of_pipeline(e, pipeline_id=u)",
        "list[enums_in_results_and_params.models.ExecutionStatus] | None",
    ),
]
_ATTRIBUTES = [
    (
        "jsonb_nested_results",
        "get_pipeline_with_steps(e, id=u)",
        "steps",
        "list[jsonb_nested_results.models.PipelineStep]",
    ),
    (
        "left_join_makes_right_side_nullable",
        "list_pipelines_with_steps(e)",
        "position",
        "int | None",
    ),
]


def _package(root: Path, case: str) -> None:
    directory = root / case
    directory.mkdir()
    files = {p.name: p.read_text() for p in (CASES / case / "expected").glob("*.py")}
    files["_executor.py"] = render_executor()
    files["__init__.py"] = format_sources({"__init__.py": '"""Generated."""\n'})["__init__.py"]
    for name, text in files.items():
        (directory / name).write_text(text)


def _check_file() -> str:
    lines = [
        "import uuid",
        "import asyncpg",
        "from typing import Any",
        "u = uuid.uuid4()",
        "",
        "async def check(e: asyncpg.Connection, pool: asyncpg.Pool) -> None:",
    ]
    for index, (case, call, _) in enumerate(_EXPECTATIONS):
        lines.insert(0, f"from {case} import queries as q{index}")
        lines.append(f"    reveal_type(await q{index}.{call})")
    for index, (case, call, attribute, _) in enumerate(_ATTRIBUTES):
        lines.insert(0, f"from {case} import queries as a{index}")
        lines.append(f"    row{index} = await a{index}.{call}")
        lines.append(f"    assert row{index} is not None")
        target = f"row{index}[0]" if "list_" in call else f"row{index}"
        lines.append(f"    reveal_type({target}.{attribute})")
    lines.append("    reveal_type(await q0.get_pipeline(pool, id=u))")
    # etlstore's own executors satisfy the generated protocol too (contracts.md).
    lines.insert(0, "import etlstore")
    lines.insert(0, "from get_returns_table_model._executor import Executor")
    lines.append("def runtime(db: etlstore.Database, tx: etlstore.Transaction) -> None:")
    lines.append("    executors: list[Executor] = [db, tx]")
    return "\n".join(lines) + "\n"


def _golden_packages() -> list[str]:
    return [c for c in case_names() if (CASES / c / "expected" / "models.py").exists()]


@pytest.mark.slow
def test_every_golden_package_passes_mypy_strict_and_ruff(tmp_path: Path) -> None:
    packages = _golden_packages()
    for case in packages:
        _package(tmp_path, case)
    checks = [
        ["mypy", "--strict", "--no-incremental", *packages],
        ["ruff", "check", "--isolated", "--line-length", "100", "--select", _LINT_SELECT, "."],
        ["ruff", "format", "--check", "--isolated", "--line-length", "100", "."],
    ]
    for command in checks:
        result = subprocess.run(
            [sys.executable, "-m", *command],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_generated_functions_have_precise_types(tmp_path: Path) -> None:
    for case in sorted({c for c, *_ in _EXPECTATIONS} | {c for c, *_ in _ATTRIBUTES}):
        _package(tmp_path, case)
    (tmp_path / "check.py").write_text(_check_file())
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "check.py",
            *sorted(p.name for p in tmp_path.iterdir() if p.is_dir()),
        ],
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(_SRC)},
        capture_output=True,
        text=True,
        check=False,
    )
    revealed = re.findall(r'Revealed type is "(.*)"', result.stdout)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert errors == []
    expected = [t for *_, t in _EXPECTATIONS] + [t for *_, t in _ATTRIBUTES]
    expected.append("get_returns_table_model.models.Pipeline | None")
    assert revealed == expected
