"""Run the generator's phases on a golden case (``cases/<case>/``: migrations/, sql/, expected/).

``expected/`` holds the generated modules (models.py and one per SQL file) and ``ir.json`` (the
queries' IR), or
``errors.txt`` when the case must fail. Set CODEGEN_REGENERATE=1 to rewrite them from the
current generator, then review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from codegen._analyze import analyze
from codegen._ir import Package
from codegen._parse import SourceError, parse_sql_dir
from codegen._render import render_package
from codegen._write import format_sources

__all__ = [
    "CASES",
    "REGENERATE",
    "case_names",
    "expected_outputs",
    "generate_case",
    "write_package",
]

CASES = Path(__file__).resolve().parent / "cases"
REGENERATE = os.environ.get("CODEGEN_REGENERATE") == "1"
# The same in every case; pinned by the CLI tests and the repository's own package instead.
_COMMON_FILES = ("__init__.py", "_executor.py")


def case_names() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if (p / "sql").is_dir())


def generate_case(case: str, dsn: str) -> tuple[Package, list[SourceError]]:
    """Parse and analyse one case on ``dsn``, an empty database."""
    directory = CASES / case
    files, errors = parse_sql_dir(directory / "sql", "sql")
    package, analysis_errors = analyze(
        dsn, directory / "migrations", files, f"case_{case}", display="migrations"
    )
    return package, sorted(errors + analysis_errors)


def expected_outputs(package: Package, errors: list[SourceError]) -> dict[str, str]:
    """What ``expected/`` should hold for this result."""
    if errors:
        return {"errors.txt": "".join(f"{e}\n" for e in errors)}
    files = format_sources(render_package(package))
    outputs = {name: text for name, text in files.items() if name not in _COMMON_FILES}
    # The queries' IR (models are pinned by models.py): types, nullability and its reasons.
    modules = msgspec.json.encode(package.modules).decode()
    outputs["ir.json"] = msgspec.json.format(modules, indent=2) + "\n"
    return outputs


def write_package(package: Package, root: Path, name: str) -> Path:
    """Write the formatted package as ``root/name`` (importable once root is on sys.path)."""
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    for file_name, text in format_sources(render_package(package)).items():
        (directory / file_name).write_text(text, encoding="utf-8")
    return directory
