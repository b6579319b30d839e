"""What a read through ``Database`` costs next to asyncpg: held connection, pools, etlstore.

Run: ``.venv/bin/python -m pytest benchmarks/bench_runtime.py --benchmark-group-by=group``.
Each round is a batch of sequential get-by-id reads on one task; compare the means within a
group (one group per event loop). ``test_report_checkout_ratios`` prints the ratios to a held
connection in one table.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

import asyncpg
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import etlstore
from etlstore._observability import QueryObserver

_GET_BY_ID = (
    "-- get_item (benchmarks/bench_runtime.py)\n"
    "SELECT id, name, payload FROM bench_item WHERE id = $1"
)
_BATCH = 200
_LOOPS = ["asyncio", *(["uvloop"] if importlib.util.find_spec("uvloop") else [])]
_TARGETS = ["held_connection", "asyncpg_pool_default", "asyncpg_pool_no_reset", "etlstore_db"]


class _Reader(Protocol):
    async def fetchrow(self, query: str, *args: Any) -> Any: ...


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def _no_reset(con: asyncpg.Connection) -> None:
    pass


@asynccontextmanager
async def _reader(target: str, dsn: str) -> AsyncIterator[_Reader]:
    async with AsyncExitStack() as stack:
        if target == "held_connection":
            con = await asyncpg.connect(dsn)
            stack.push_async_callback(con.close)
            yield con
        elif target == "asyncpg_pool_default":
            yield await stack.enter_async_context(asyncpg.create_pool(dsn, min_size=1, max_size=4))
        elif target == "asyncpg_pool_no_reset":
            yield await stack.enter_async_context(
                asyncpg.create_pool(dsn, min_size=1, max_size=4, reset=_no_reset)
            )
        else:
            yield await stack.enter_async_context(etlstore.connect(dsn, min_size=1, max_size=4))


async def _read_batch(reader: _Reader) -> None:
    for i in range(_BATCH):
        await reader.fetchrow(_GET_BY_ID, i % 1000 + 1)


@pytest.fixture(scope="module")
def item_table(bench_dsn: str) -> str:
    async def create() -> None:
        con = await asyncpg.connect(bench_dsn)
        try:
            await con.execute(
                "DROP TABLE IF EXISTS bench_item;"
                "CREATE TABLE bench_item (id int PRIMARY KEY, name text NOT NULL, payload jsonb);"
                "INSERT INTO bench_item SELECT g, 'item ' || g, '{\"k\": 1}' "
                "FROM generate_series(1, 1000) g"
            )
        finally:
            await con.close()

    asyncio.run(create())
    return bench_dsn


@pytest.fixture(params=_LOOPS)
def loop(request: pytest.FixtureRequest) -> Iterator[asyncio.AbstractEventLoop]:
    event_loop = _new_loop(request.param)
    yield event_loop
    event_loop.close()


def _run_benchmark(
    benchmark: BenchmarkFixture, loop: asyncio.AbstractEventLoop, target: str, dsn: str
) -> None:
    context = _reader(target, dsn)
    reader = loop.run_until_complete(context.__aenter__())
    try:
        loop.run_until_complete(_read_batch(reader))  # warm: connections, prepared statements
        benchmark.pedantic(  # type: ignore[no-untyped-call]
            lambda: loop.run_until_complete(_read_batch(reader)), rounds=30, iterations=1
        )
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))


@pytest.mark.parametrize("target", _TARGETS)
def test_get_by_id(
    benchmark: BenchmarkFixture,
    loop: asyncio.AbstractEventLoop,
    item_table: str,
    target: str,
    request: pytest.FixtureRequest,
) -> None:
    loop_kind = "uvloop" if "uvloop" in type(loop).__module__ else "asyncio"
    benchmark.group = f"get_by_id x{_BATCH} ({loop_kind})"
    _run_benchmark(benchmark, loop, target, item_table)


async def _time_batch(reader: _Reader) -> float:
    start = time.perf_counter()
    await _read_batch(reader)
    return (time.perf_counter() - start) / _BATCH


def _measure(kind: str, dsn: str, rounds: int) -> dict[str, float]:
    """Best µs per read of each target; rounds interleave the targets so load hits all alike."""

    async def measure_all() -> dict[str, float]:
        best = dict.fromkeys(_TARGETS, float("inf"))
        async with AsyncExitStack() as stack:
            readers = {t: await stack.enter_async_context(_reader(t, dsn)) for t in _TARGETS}
            for reader in readers.values():
                await _read_batch(reader)
            for round_number in range(rounds):
                order = _TARGETS[round_number % 2 :: 1] + _TARGETS[: round_number % 2]
                for target in order:
                    best[target] = min(best[target], await _time_batch(readers[target]))
        return best

    loop = _new_loop(kind)
    try:
        return loop.run_until_complete(measure_all())
    finally:
        loop.close()


def test_report_checkout_ratios(item_table: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Best-of-N µs per read and the ratio to a held connection, per event loop."""
    lines = [f"{'loop':8} {'target':24} {'µs/read':>8} {'ratio':>6}"]
    for kind in _LOOPS:
        per_read = _measure(kind, item_table, rounds=60)
        held = per_read["held_connection"]
        for target, seconds in per_read.items():
            lines.append(f"{kind:8} {target:24} {seconds * 1e6:8.1f} {seconds / held:6.2f}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert per_read["etlstore_db"] > 0


@pytest.mark.benchmark(group="runtime overhead per statement")
def test_checkout_take_and_give(
    benchmark: BenchmarkFixture, loop: asyncio.AbstractEventLoop, item_table: str
) -> None:
    """The synchronous fast path: take a free connection and give it back."""
    context = etlstore.connect(item_table, min_size=1, max_size=1)
    db = loop.run_until_complete(context.__aenter__())
    fast = db._fast

    def take_and_give() -> None:
        holder = fast.take()
        assert holder is not None
        fast.give(holder, holder._con)

    try:
        benchmark(take_and_give)
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))


@pytest.mark.benchmark(group="runtime overhead per statement")
def test_observer_record(benchmark: BenchmarkFixture) -> None:
    """Counting, timing bookkeeping and the (disabled) DEBUG check for one statement."""
    observer = QueryObserver(slow_query_s=0.5)
    benchmark(observer.record, _GET_BY_ID, 0.0001, None)


@pytest.mark.benchmark(group="runtime overhead per statement")
def test_perf_counter_pair(benchmark: BenchmarkFixture) -> None:
    """The two clock reads that time each statement."""

    def two_reads() -> float:
        return time.perf_counter() - time.perf_counter()

    benchmark(two_reads)
