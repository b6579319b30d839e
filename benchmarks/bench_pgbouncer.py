"""What PgBouncer (transaction pooling) costs etlstore: direct against through PgBouncer.

Run: ``.venv/bin/python -m pytest benchmarks/bench_pgbouncer.py -s`` (or ``python3 dev.py
bench``; ``--quick`` for a smoke run). Skipped, saying why, where Debian's pgbouncer can be
neither found nor fetched (``tests/_pgbouncer.py``).

Three targets, measured round-robin in one event loop so that drift hits all alike:

- ``direct``: ``etlstore.connect(dsn)``, asyncpg's statement cache on (one round trip a read);
- ``direct_no_cache``: the same with ``statement_cache_size=0``, what PgBouncer mode sends but
  without the hop: tells the cost of the cache being off from the cost of the proxy;
- ``pgbouncer``: ``etlstore.connect(pgbouncer_dsn, pgbouncer=True)``.

Two operations: a get-by-id and a small transaction (BEGIN, SELECT ... FOR UPDATE, UPDATE,
COMMIT), each sequential (one task), with 8 and with ``CONCURRENCY`` tasks; every target has
``CONCURRENCY`` client connections, to which PgBouncer lends ``PGBOUNCER_POOL`` server
connections.
``test_report_pgbouncer_overhead`` prints p50/p99 and ops/s with the ratio to ``direct``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from datetime import UTC, datetime
from typing import Final

import asyncpg
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import etlstore
from benchmarks._fixtures import Results, quick, replay, results_folder
from benchmarks._report import latency_ms, machine, write_side_report
from benchmarks._runner import Cell, interleave
from tests._pgbouncer import PgBouncer, require_pgbouncer, running_pgbouncer

CONCURRENCY: Final = 16
PGBOUNCER_POOL: Final = 8
TARGETS: Final = ("direct", "direct_no_cache", "pgbouncer")
#: Named apart from the main benchmark's operations: pytest-benchmark groups by name.
OPS: Final = ("pgbouncer_get_by_id", "pgbouncer_transaction")
MODES: Final = ("sequential", "concurrent_8", f"concurrent_{CONCURRENCY}")
_LOOP: Final = "asyncio"
_ROWS: Final = 1000

_GET_BY_ID: Final = (
    "-- get_item (benchmarks/bench_pgbouncer.py)\n"
    "SELECT id, name, payload, counter FROM bench_pgb_item WHERE id = $1"
)
_LOCK: Final = (
    "-- lock_item (benchmarks/bench_pgbouncer.py)\n"
    "SELECT counter FROM bench_pgb_item WHERE id = $1 FOR UPDATE"
)
_BUMP: Final = (
    "-- bump_item (benchmarks/bench_pgbouncer.py)\n"
    "UPDATE bench_pgb_item SET counter = counter + 1 WHERE id = $1"
)
_CREATE: Final = (
    "DROP TABLE IF EXISTS bench_pgb_item;"
    "CREATE TABLE bench_pgb_item (id int PRIMARY KEY, name text NOT NULL, payload jsonb,"
    " counter int NOT NULL DEFAULT 0);"
    "INSERT INTO bench_pgb_item (id, name, payload)"
    f" SELECT g, 'item ' || g, '{{\"k\": 1}}' FROM generate_series(1, {_ROWS}) g"
)


async def _get_by_id(db: etlstore.Database, i: int) -> None:
    row = await db.fetchrow(_GET_BY_ID, i % _ROWS + 1)
    assert row is not None


async def _transaction(db: etlstore.Database, i: int) -> None:
    async with db.transaction() as tx:
        await tx.fetchval(_LOCK, i % _ROWS + 1)
        await tx.execute(_BUMP, i % _ROWS + 1)


_OPERATIONS: Final[dict[str, Callable[[etlstore.Database, int], Awaitable[None]]]] = {
    "pgbouncer_get_by_id": _get_by_id,
    "pgbouncer_transaction": _transaction,
}


def _batch_of(db: etlstore.Database, op: str) -> Callable[[int, int], Awaitable[None]]:
    """``run(i, task)`` of an operation on one target (i: distinct rows, so no lock queues)."""
    run = _OPERATIONS[op]
    return lambda i, _task: run(db, i)


async def _measure(direct_dsn: str, bouncer_dsn: str, rounds: int, batch: int) -> list[Cell]:
    def open_db(
        url: str, *, pgbouncer: bool = False, cache: int | None = None
    ) -> AbstractAsyncContextManager[etlstore.Database]:
        return etlstore.connect(
            url,
            min_size=CONCURRENCY,
            max_size=CONCURRENCY,
            slow_query_s=None,
            pgbouncer=pgbouncer,
            statement_cache_size=cache,
        )

    async with AsyncExitStack() as stack:
        dbs: dict[str, etlstore.Database] = {
            "direct": await stack.enter_async_context(open_db(direct_dsn)),
            "direct_no_cache": await stack.enter_async_context(open_db(direct_dsn, cache=0)),
            "pgbouncer": await stack.enter_async_context(open_db(bouncer_dsn, pgbouncer=True)),
        }
        cells: list[Cell] = []
        for op in OPS:
            for mode in MODES:
                tasks = 1 if mode == "sequential" else int(mode.rpartition("_")[2])
                by_target = {t: Cell(op, t, _LOOP, mode) for t in TARGETS}
                await interleave(
                    {t: _batch_of(dbs[t], op) for t in TARGETS},
                    by_target.__getitem__,
                    rounds=rounds,
                    calls=batch,
                    tasks=tasks,
                )
                cells.extend(by_target.values())
        return cells


@pytest.fixture(scope="module")
def pgbouncer_bench(
    bench_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PgBouncer]:
    """A pgbouncer (transaction pooling, PGBOUNCER_POOL server connections) before bench_dsn."""
    require_pgbouncer()
    with running_pgbouncer(
        bench_dsn, tmp_path_factory.mktemp("bench-pgbouncer"), pool_size=PGBOUNCER_POOL
    ) as bouncer:
        yield bouncer


@pytest.fixture(scope="module")
def pgbouncer_results(bench_dsn: str, pgbouncer_bench: PgBouncer) -> Results:
    """Every (op, target, mode) cell, measured once for the module."""

    async def run() -> list[Cell]:
        con = await asyncpg.connect(bench_dsn)
        try:
            await con.execute(_CREATE)
        finally:
            await con.close()
        rounds, batch = (2, 64) if quick() else (10, 320)
        return await _measure(bench_dsn, pgbouncer_bench.dsn_for(bench_dsn), rounds, batch)

    cells = asyncio.run(run())
    return Results({(c.op, c.impl, c.loop, c.mode): c for c in cells})


def report_lines(results: Results, version: str) -> list[str]:
    """The table for docs/scaling.md: p50/p99 per call, ops/s, and ops/s ÷ direct."""
    lines = [
        f"PgBouncer {version}, pool_mode=transaction, default_pool_size={PGBOUNCER_POOL}, "
        f"{CONCURRENCY} client connections per target",
        "",
        "| operation | mode | target | p50 ms | p99 ms | ops/s | ÷ direct |",
        "|---|---|---|---|---|---|---|",
    ]
    for op in OPS:
        for mode in MODES:
            base = results.cell(op, "direct", _LOOP, mode)
            for target in TARGETS:
                cell = results.cell(op, target, _LOOP, mode)
                if cell is None or base is None:
                    continue
                lines.append(
                    f"| {op} | {mode} | {target} | {latency_ms(cell, 0.5):.3f} | "
                    f"{latency_ms(cell, 0.99):.3f} | {cell.ops_per_s:,.0f} | "
                    f"{cell.ops_per_s / base.ops_per_s:.2f} |"
                )
    return lines


def test_report_pgbouncer_overhead(
    pgbouncer_results: Results, pgbouncer_bench: PgBouncer, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = report_lines(pgbouncer_results, pgbouncer_bench.version)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    meta = {
        "when": when,
        "machine": machine(),
        "quick": quick(),
        "pgbouncer": pgbouncer_bench.version,
    }
    write_side_report(
        results_folder(),
        "pgbouncer",
        f"# PgBouncer\n\n{when}, {machine()}.\n\n" + "\n".join(lines) + "\n",
        meta,
        pgbouncer_results.cells.values(),
    )
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert len(lines) == 4 + len(OPS) * len(MODES) * len(TARGETS)


_CASES = [(op, target, mode) for op in OPS for mode in MODES for target in TARGETS]


@pytest.mark.parametrize(("op", "target", "mode"), _CASES)
def test_pgbouncer(
    benchmark: BenchmarkFixture, pgbouncer_results: Results, op: str, target: str, mode: str
) -> None:
    replay(benchmark, pgbouncer_results, op, target, _LOOP, mode)
