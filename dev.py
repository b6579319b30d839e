"""The README's commands: set up a virtualenv, then run the main job, the tests or the benchmarks.

Needs nothing but python3 and a clone: the virtualenv (.venv), the install and the database
(an embedded PostgreSQL unless DATABASE_URL is set) are all made here, once, and reused.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".etlstore-install"
EXTRAS = ".[embedded,dev]"

# The test command: each step must pass; the order puts the cheapest checks first.
TEST_STEPS: list[list[str]] = [
    ["ruff", "check", "."],
    ["ruff", "format", "--check", "."],
    ["mypy"],
    [str(PYTHON), "-m", "codegen", "--check"],
    [str(PYTHON), "-m", "codegen", "docs", "--check"],
    [str(PYTHON), "-m", "codegen", "vet"],
    [str(PYTHON), "-m", "pytest", "-q"],
]


def _install_fingerprint() -> str:
    """What the install depends on: the dependency list and the Python that runs it."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def ensure_venv() -> None:
    """Create .venv and install the project into it when missing or when pyproject.toml changed."""
    if not PYTHON.exists():
        print("dev: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    fingerprint = _install_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    print(f"dev: installing etlstore{EXTRAS[1:]} into .venv", flush=True)
    pip = [str(PYTHON), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True, cwd=ROOT)
    subprocess.run([*pip, "install", "-e", EXTRAS], check=True, cwd=ROOT)
    STAMP.write_text(fingerprint)


def _run(step: list[str]) -> int:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    print(
        f"dev: $ {' '.join(Path(step[0]).name if i == 0 else a for i, a in enumerate(step))}",
        flush=True,
    )
    return subprocess.run(step, cwd=ROOT, env=env).returncode


def _bench(args: list[str]) -> int:
    """pytest-benchmark over benchmarks/bench_*.py; ``--quick`` for a smoke run (few samples)."""
    quick = "--quick" in args
    rest = [a for a in args if a != "--quick"]
    # A smoke run writes beside a full run's results, never over them.
    results = ROOT / "benchmarks" / "results" / ("quick" if quick else "")
    results.mkdir(parents=True, exist_ok=True)
    os.environ["ETLSTORE_BENCH_QUICK"] = "1" if quick else "0"
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "benchmarks").glob("bench_*.py"))
    code = _run(
        [
            str(PYTHON),
            "-m",
            "pytest",
            *files,
            "-q",
            "-p",
            "no:cacheprovider",
            f"--benchmark-json={results / 'benchmark.json'}",
            "--benchmark-columns=median,max,ops,rounds",
            *rest,
        ]
    )
    summary = results / "summary.md"
    if summary.exists():  # the headline tables again, below pytest-benchmark's own
        print("\n" + summary.read_text().split("\n## etlstore ÷")[0])
        print(f"dev: all tables in {summary.relative_to(ROOT)}, plots beside it", flush=True)
    return code


def main(argv: list[str]) -> int:
    commands = ("run", "test", "bench")
    if not argv or argv[0] not in commands:
        print(f"usage: python3 dev.py {{{'|'.join(commands)}}} [args...]", file=sys.stderr)
        return 2
    ensure_venv()
    command, rest = argv[0], argv[1:]
    if command == "run":
        return _run([str(BIN / "etlstore"), "demo", *rest])
    if command == "bench":
        return _bench(rest)
    for step in TEST_STEPS:
        code = _run(step + (rest if step[-1] == "-q" else []))
        if code != 0:
            print(f"dev: failed (exit {code}): {' '.join(step)}", file=sys.stderr)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
