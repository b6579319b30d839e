"""Golden end-to-end cases: migrations + SQL in, generated modules and IR (or errors) out."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.codegen.casekit import CASES, REGENERATE, case_names, expected_outputs, generate_case


def test_there_are_at_least_forty_cases() -> None:
    assert len(case_names()) >= 40


@pytest.mark.parametrize("case", case_names())
def test_case_output_matches_expected(case: str, make_database: Callable[[], str]) -> None:
    package, errors = generate_case(case, make_database())
    outputs = expected_outputs(package, errors)
    expected_dir = CASES / case / "expected"
    if REGENERATE:
        expected_dir.mkdir(exist_ok=True)
        for stale in expected_dir.iterdir():
            if stale.name not in outputs:
                stale.unlink()
        for name, text in outputs.items():
            (expected_dir / name).write_text(text, encoding="utf-8")
    expected = {p.name: p.read_text(encoding="utf-8") for p in sorted(expected_dir.glob("*"))}
    assert sorted(outputs) == sorted(expected)
    for name, text in outputs.items():
        assert text == expected[name], f"{case}/expected/{name} differs; see CODEGEN_REGENERATE"
