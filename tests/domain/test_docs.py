"""docs/domain.md: its examples run, in order, against the migrated database."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from etlstore import Database

DOC = Path(__file__).resolve().parents[2] / "docs" / "domain.md"
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


async def test_the_examples_of_docs_domain_run(db: Database) -> None:
    blocks = _BLOCK.findall(DOC.read_text())
    assert len(blocks) >= 5
    namespace: dict[str, object] = {"db": db}
    for block in blocks:
        code = compile(block, str(DOC), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)  # our own documentation: trusted
        if inspect.isawaitable(result):
            await result
