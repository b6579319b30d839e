"""The README's SQL conventions show files the golden cases generate and run, so they cannot rot."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from tests.codegen.casekit import CASES

_REPO = Path(__file__).resolve().parents[2]
_SECTION = "## SQL conventions"
_README = _REPO / "README.md"


def _section(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    assert _SECTION in text, f"{path.name} has no {_SECTION!r} section"
    after = text.split(_SECTION, 1)[1]
    return re.split(r"^## ", after, flags=re.MULTILINE)[0]


def _sql_examples() -> list[str]:
    examples = re.findall(r"```sql\n(.*?)```", _section(_README), flags=re.DOTALL)
    return [textwrap.dedent(e) for e in examples]


def test_the_conventions_have_sql_examples() -> None:
    assert len(_sql_examples()) >= 4


@pytest.mark.parametrize("example", _sql_examples())
def test_every_sql_example_is_part_of_a_golden_case(example: str) -> None:
    sources = [p.read_text(encoding="utf-8") for p in CASES.glob("*/sql/*.sql")]
    assert any(example.strip() in source for source in sources), example


def _python_lines() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", _section(_README), flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_generated_code_shown_is_what_the_generator_writes() -> None:
    generated = "\n".join(p.read_text(encoding="utf-8") for p in CASES.glob("*/expected/*.py"))
    lines = _python_lines()
    assert lines
    missing = [line for line in lines if line.removesuffix(" ...") not in generated]
    assert missing == []
