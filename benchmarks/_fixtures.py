"""The benchmark session: a seeded database, one interleaved measurement, its replay per test.

The database is ``etlstore_bench`` (``etlstore_bench_quick`` for ``--quick``) on the server
etlstore uses (``DATABASE_URL``'s, or the working copy's embedded one), kept between runs so that
the seed is made once. It runs with ``synchronous_commit = off``: commits do not wait for the
disk, for every implementation alike (durability is not what is measured).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
import psycopg
import pytest
from psycopg import sql
from pytest_benchmark.fixture import BenchmarkFixture
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import etlstore
from benchmarks import _report
from benchmarks._alternatives import Implementation, Inputs, open_asyncpg, open_etlstore
from benchmarks._runner import LOOPS, MODES, Cell, Plan, measure_operation, new_loop
from etlstore._config import resolve_dsn, with_database
from etlstore._demo_seed import Scale, seed
from etlstore._demo_targets import OPERATIONS
from etlstore._migrations import apply_migrations

__all__ = ["RESULTS", "Results", "bench_results", "replay"]

ROOT: Final = Path(__file__).resolve().parents[1]
RESULTS: Final = ROOT / "benchmarks" / "results"
BENCH_SCALE: Final = Scale(
    pipelines=10_000, executions=1_000_000, events=1_000_000, metrics=100_000
)
FULL: Final = Plan(rounds=8, batch=32, slow_batch=8)
QUICK: Final = Plan(rounds=2, batch=16, slow_batch=8)

_IDS_SQL: Final = """-- bench_ids (benchmarks)
SELECT (SELECT array_agg(id) FROM (SELECT id FROM pipelines WHERE name LIKE 'seed-pipeline-%'
                                   ORDER BY md5(name) LIMIT 5000) AS p),
       (SELECT array_agg(id) FROM (SELECT id FROM users WHERE username LIKE 'seed-user-%'
                                   ORDER BY md5(username) LIMIT 500) AS u),
       (SELECT max(id) FROM pipeline_executions)
"""
_REQUEUE_SQL: Final = """-- bench_requeue (benchmarks)
UPDATE pipeline_executions
SET status = 'queued', claimed_by = NULL, claimed_at = NULL, heartbeat_at = NULL, started_at = NULL
WHERE status = 'running' AND claimed_by LIKE 'bench-worker-%'
"""
_DELETE_BULK_SQL: Final = "DELETE FROM pipeline_executions WHERE id > $1"
_CLEANUP_SQL: Final = """-- bench_cleanup (benchmarks)
DELETE FROM pipelines WHERE name LIKE 'bench-%';
DELETE FROM audit_log WHERE actor = 'bench';
"""


@dataclass(frozen=True)
class Results:
    """Every measured cell, by (op, impl, loop, mode)."""

    cells: dict[tuple[str, str, str, str], Cell]

    def cell(self, op: str, impl: str, loop: str, mode: str) -> Cell | None:
        return self.cells.get((op, impl, loop, mode))


def quick() -> bool:
    return os.environ.get("ETLSTORE_BENCH_QUICK") == "1"


def results_folder() -> Path:
    """benchmarks/results/, or results/quick/ for a smoke run (so it never replaces a full one)."""
    return RESULTS / "quick" if quick() else RESULTS


def _database(name: str) -> str:
    server = resolve_dsn()
    with psycopg.connect(server, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(sql.Identifier(name))
        )
    dsn = with_database(server, name)
    apply_migrations(dsn, ROOT / "migrations")
    return dsn


async def _open_all(dsn: str, inputs: Inputs) -> list[Implementation]:
    impls: list[Implementation] = [
        await open_etlstore(dsn, inputs),
        *await open_asyncpg(dsn, inputs),
    ]
    if importlib.util.find_spec("sqlalchemy"):
        from benchmarks._sqlalchemy import open_sqlalchemy

        impls += await open_sqlalchemy(dsn, inputs)
    if importlib.util.find_spec("psycopg_pool"):
        from benchmarks._alternatives import open_psycopg

        impls.append(await open_psycopg(dsn, inputs))
    return impls


async def _measure_loop(dsn: str, loop: str, plan: Plan, progress: Progress) -> list[Cell]:
    admin = await asyncpg.connect(dsn)
    impls: list[Implementation] = []
    try:
        row = await admin.fetchrow(_IDS_SQL)
        assert row is not None
        inputs = Inputs.build(row[0], row[1])
        watermark = row[2]
        impls = await _open_all(dsn, inputs)

        async def after(op: str) -> None:
            if op == "claim":
                await admin.execute(_REQUEUE_SQL)
            elif op == "bulk_1000":
                await admin.execute(_DELETE_BULK_SQL, watermark)

        cells: list[Cell] = []
        for operation in OPERATIONS:
            op = operation.key
            # A held connection is never checked out: nothing to measure for acquire.
            chosen = [i for i in impls if not (op == "acquire" and i.name == "asyncpg_held")]
            progress.update(progress.task_ids[0], description=f"{loop} {op}")
            if not progress.console.is_terminal:  # no bar to redraw: a line per operation
                progress.console.print(f"measuring {loop} {op}")
            cells += await measure_operation(
                op,
                chosen,
                loop=loop,
                plan=plan,
                after_batch=functools.partial(after, op),
                progress=progress,
            )
        return cells
    finally:
        for impl in impls:
            await impl.close()
        await admin.execute(_CLEANUP_SQL)
        await admin.close()


async def _seed(dsn: str, scale: Scale, console: Console) -> None:
    async with etlstore.connect(dsn, min_size=2, max_size=2, slow_query_s=None) as db:
        added = await seed(db, scale, console)
    console.print(f"seed: {added:,} rows added" if added else "seed: reused")


def measure(plan: Plan, scale: Scale, database: str, console: Console) -> list[Cell]:
    """Seed if needed, then every operation on every loop; returns all cells."""
    dsn = _database(database)
    asyncio.run(_seed(dsn, scale, console))
    columns = (
        TextColumn("measuring {task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    cells: list[Cell] = []
    with Progress(*columns, console=console) as progress:
        progress.add_task("", total=len(LOOPS) * len(OPERATIONS) * len(MODES) * plan.rounds)
        for kind in LOOPS:
            loop = new_loop(kind)
            try:
                cells += loop.run_until_complete(_measure_loop(dsn, kind, plan, progress))
            finally:
                loop.close()
    return cells


# Each bench module imports the fixture, which makes one fixture per module for pytest: the
# measurement is cached here so that it still runs once per session.
_MEASURED: dict[str, Results] = {}


@pytest.fixture(scope="session")
def bench_results(pytestconfig: pytest.Config) -> Results:
    """The whole interleaved measurement, once per session; writes results/ when done."""
    if "results" not in _MEASURED:
        _MEASURED["results"] = _measure_session(pytestconfig)
    return _MEASURED["results"]


def _measure_session(pytestconfig: pytest.Config) -> Results:
    plan, scale, name = (
        (QUICK, BENCH_SCALE.times(0.1), "etlstore_bench_quick")
        if quick()
        else (FULL, BENCH_SCALE, "etlstore_bench")
    )
    capture: Any = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        console = Console(stderr=True)
        console.print()
        cells = measure(plan, scale, name, console)
        folder = results_folder()
        folder.mkdir(parents=True, exist_ok=True)
        written = _report.write_all(cells, folder, quick=quick())
        console.print(_report.console_summary(cells), soft_wrap=True)
        console.print("written: " + ", ".join(str(p.relative_to(ROOT)) for p in written))
    return Results({(c.op, c.impl, c.loop, c.mode): c for c in cells})


class _ReplayClock:
    """A timer for pytest-benchmark that reads back recorded latencies instead of the clock."""

    def __init__(self, latencies: list[float]) -> None:
        stamps = [0.0]
        for seconds in latencies:
            stamps += [stamps[-1] + seconds, stamps[-1] + seconds]
        self._stamps = iter(stamps[:-1])

    def __call__(self) -> float:
        return next(self._stamps)

    def __repr__(self) -> str:
        return "replayed time.perf_counter (benchmarks/_runner.py)"


def replay(
    benchmark: BenchmarkFixture, results: Results, op: str, impl: str, loop: str, mode: str
) -> None:
    """Feed one cell's latencies to pytest-benchmark: its stats, JSON and table."""
    cell = results.cell(op, impl, loop, mode)
    if cell is None or not cell.latencies_s:
        pytest.skip(f"{impl} not measured for {op} (not installed, or not applicable)")
    base = results.cell(op, "asyncpg_pool", loop, mode)
    benchmark.group = f"{op} ({loop}, {mode})"
    benchmark.extra_info.update(_report.cell_info(cell, base))
    benchmark._timer = _ReplayClock(cell.latencies_s)
    benchmark.pedantic(  # type: ignore[no-untyped-call]
        lambda: None, rounds=len(cell.latencies_s), iterations=1
    )
