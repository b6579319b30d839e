"""Format generated text with ruff and write it atomically, or compare it in check mode."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from codegen._render import GENERATED_MARK

__all__ = ["FormatError", "format_sources", "stale_files", "write_files"]

# The repository's lint selection and line length, fixed here so that the output does not depend
# on where it is written (a case directory, another project).
_RUFF_SETTINGS = [
    "--isolated",
    "--line-length",
    "100",
    "--target-version",
    "py311",
]
_LINT_SELECT = "E,F,W,I,B,UP,SIM,RUF,ASYNC,PT,RET,C4,N"


class FormatError(Exception):
    """ruff could not format the generated code (a generator bug, not a user's mistake)."""


def _ruff(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def format_sources(files: dict[str, str]) -> dict[str, str]:
    """Sort imports, apply ruff's safe fixes and format every file, in one ruff run each."""
    with tempfile.TemporaryDirectory(prefix="codegen-") as tmp:
        root = Path(tmp)
        for name, text in files.items():
            (root / name).write_text(text, encoding="utf-8")
        fixed = _ruff(
            ["check", *_RUFF_SETTINGS, "--select", _LINT_SELECT, "--fix", "-q", "."], root
        )
        formatted = _ruff(["format", *_RUFF_SETTINGS, "-q", "."], root)
        if "No module named ruff" in formatted.stderr:
            raise FormatError(
                "ruff is needed to format generated code: pip install 'etlstore[codegen]'"
            )
        if formatted.returncode != 0:
            raise FormatError(
                f"ruff format failed on generated code:\n{formatted.stdout}{formatted.stderr}"
            )
        if fixed.returncode not in (0, 1):
            raise FormatError(f"ruff check failed on generated code:\n{fixed.stderr}")
        return {name: (root / name).read_text(encoding="utf-8") for name in files}


def _generated_files(out: Path) -> list[Path]:
    if not out.is_dir():
        return []
    return [
        p
        for p in sorted(out.glob("*.py"))
        if p.read_text(encoding="utf-8", errors="replace").startswith(GENERATED_MARK)
    ]


def stale_files(out: Path, files: dict[str, str]) -> list[Path]:
    """Files that differ from what would be written, are missing, or should not exist."""
    stale = [
        out / name
        for name, text in sorted(files.items())
        if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text
    ]
    stale += [p for p in _generated_files(out) if p.name not in files]
    return stale


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_files(out: Path, files: dict[str, str]) -> list[Path]:
    """Write what changed, delete generated files no longer produced; return the paths touched."""
    out.mkdir(parents=True, exist_ok=True)
    touched = stale_files(out, files)
    for path in touched:
        if path.name in files:
            _write_atomic(path, files[path.name])
        else:
            path.unlink()
    return touched
