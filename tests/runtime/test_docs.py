"""docs/runtime.md: its examples run, in order, against the migrated database."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "runtime.md"
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


@pytest.fixture
async def nightly_sales(
    migrated_database: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """The pipeline the examples work on, with one queued execution; DATABASE_URL set to it."""
    monkeypatch.setenv("DATABASE_URL", migrated_database)
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        conn.execute(
            "WITH p AS (INSERT INTO pipelines (name) VALUES ('nightly-sales') RETURNING id)"
            " INSERT INTO pipeline_executions (pipeline_id, triggered_by) SELECT id, 'api' FROM p"
        )
    yield migrated_database
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        conn.execute("DELETE FROM pipelines WHERE name = 'nightly-sales'")


async def test_the_examples_of_docs_runtime_run(nightly_sales: str) -> None:
    blocks = [b for b in _BLOCK.findall(DOC.read_text()) if "prometheus_client" not in b]
    assert len(blocks) >= 3
    namespace: dict[str, object] = {}
    for block in blocks:
        code = compile(block, str(DOC), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)  # our own documentation: trusted
        if inspect.isawaitable(result):
            await result
    claimed = namespace["claimed_ids"]
    assert isinstance(claimed, list)
    assert len(claimed) == 1
    queued = namespace["queued"]
    assert getattr(queued, "idempotency_key", None) == namespace["request_key"]
