"""The README's quick start runs as written, against a migrated database."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_code(title: str) -> str:
    section = README.read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, f"no python example under ## {title}"
    return "\n".join(blocks)


@pytest.fixture
async def readme_database(
    migrated_database: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    monkeypatch.setenv("DATABASE_URL", migrated_database)
    yield migrated_database
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        conn.execute("DELETE FROM pipelines WHERE name = 'nightly-sales'")


async def test_the_quick_start_runs_as_written(
    readme_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = compile(
        _section_code("Quick start"), str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    )
    result = eval(code, {})  # the README is our own text: trusted
    if inspect.isawaitable(result):
        await result
    assert capsys.readouterr().out.splitlines() == [
        "pipelines_name_key ('name',)",
        "query create_pipeline: duplicate key violates unique constraint pipelines_name_key"
        " on public.pipelines (columns: name)",
    ]
    with psycopg.connect(readme_database) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pipeline_executions e JOIN pipelines p ON p.id = e.pipeline_id"
            " WHERE p.name = 'nightly-sales' AND e.idempotency_key = 'request-8f2c'"
        ).fetchone()
    assert row == (1,)
