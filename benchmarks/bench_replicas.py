"""Read replicas: what routing costs, how soon a commit is readable there, lag, read throughput.

Run: ``.venv/bin/python -m pytest benchmarks/bench_replicas.py -q -p no:cacheprovider``
(``ETLSTORE_BENCH_QUICK=1`` for a smoke run), or ``python3 dev.py bench`` with the other modules.
It starts a primary and a streaming replica of its own on 127.0.0.1 (``tests/_replica_pair.py``)
and skips where it cannot. Both servers share this machine's cores with each other and with the
client: the figures show what routing costs and how soon a replica catches up, not the read
capacity a replica on a machine of its own adds. The measurement runs once per module, is written
to ``results/replicas.md`` (``results/quick/`` for a smoke run) and is replayed per test into
pytest-benchmark like the other modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any, Final
from uuid import UUID, uuid4

import asyncpg
import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from rich.console import Console

import etlstore
from benchmarks._fixtures import ROOT, Results, quick, replay, results_folder
from benchmarks._report import latency_ms, machine, ops_ratio, write_side_report
from benchmarks._runner import Cell, interleave, new_loop
from etlstore._demo_seed import Scale, seed
from etlstore._embedded import EmbeddedServerError
from etlstore.queries import pipeline_executions, pipelines
from etlstore.queries._executor import Executor
from etlstore.queries.models import ExecutionStatus, TriggerKind
from etlstore.queries.pipeline_executions import CopyPipelineExecutionsRecord
from tests._replica_pair import Pair, replica_pair
from tests.domain._factories import make_pipeline

_LOOP: Final = "asyncio"
_SCALE: Final = Scale(pipelines=2_000, executions=2_000, events=1_000, metrics=1_000)
_COPY_ROWS: Final = 10_000
#: The probe interval is what read-your-writes through a replica waits for: the default and a
#: short one.
_PROBE_INTERVALS_S: Final = (1.0, 0.05)
_CONCURRENCY: Final = (8, 16)
_GIVE_UP_S: Final = 10.0

# What is compared (the tests' parameters too).
_GET_TARGETS: Final = ("primary", "replica", "replica_direct", "primary_read_only")
_THROUGHPUT_TARGETS: Final = ("primary", "replica", "spread")

_ROW_ON_REPLICA_SQL: Final = "SELECT EXISTS (SELECT 1 FROM pipelines WHERE id = $1)"
_WAL_POSITION_SQL: Final = "SELECT pg_current_wal_lsn()"  # asyncpg: pg_lsn <-> int
_REPLAYED_SQL: Final = "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn"
_DELETE_COPIED_SQL: Final = "DELETE FROM pipeline_executions WHERE error = 'bench-replica-copy'"


@dataclass(frozen=True)
class _Plan:
    get_rounds: int
    get_batch: int  # sequential reads per target per round
    commits: dict[float, int]  # read-your-writes samples per probe interval
    visible: int  # commit -> row visible on the replica samples
    copies: int
    throughput_rounds: int
    throughput_batch: int  # reads per target per round


_FULL: Final = _Plan(20, 200, {1.0: 20, 0.05: 60}, 60, 10, 12, 1_600)
_QUICK: Final = _Plan(4, 100, {1.0: 5, 0.05: 15}, 15, 3, 3, 800)


@dataclass
class _Measured:
    #: the 1-minute load average before the servers started: other work on the machine
    load_at_start: float
    cells: dict[tuple[str, str, str, str], Cell] = field(default_factory=dict)
    #: probe interval -> (reads at a commit LSN that ran on the primary, reads)
    fallbacks: dict[float, tuple[int, int]] = field(default_factory=dict)
    #: probe interval -> commits the router never saw replayed within _GIVE_UP_S
    never_routed: dict[float, int] = field(default_factory=dict)
    wal_bytes: list[int] = field(default_factory=list)
    #: the routing decision (``Router.pick``) per statement, best of a few runs
    pick_s: float | None = None

    def cell(self, op: str, impl: str, mode: str) -> Cell:
        key = (op, impl, _LOOP, mode)
        if key not in self.cells:
            self.cells[key] = Cell(op, impl, _LOOP, mode)
        return self.cells[key]


def _probe_mode(interval_s: float) -> str:
    return f"probe_{interval_s:g}s"


async def _new_pipeline(db: etlstore.Database) -> UUID:
    created = await make_pipeline(
        db, f"bench-replica-{uuid4().hex}", retry_delay_seconds=60, is_paused=True
    )
    return created.id


def _routed_to_replica(db: etlstore.Database, lsn: int) -> bool:
    """Whether ``db.replica_at(lsn)`` would run on a replica now (what the router decides by)."""
    return any(s.healthy and (s.replay_lsn or 0) >= lsn for s in db.replica_status())


async def _wait_until(check: Callable[[], Awaitable[bool]], *, pause_s: float = 0.0) -> None:
    """Poll ``check`` (back to back by default); TimeoutError after ``_GIVE_UP_S``."""
    give_up_at = perf_counter() + _GIVE_UP_S
    while not await check():
        if perf_counter() > give_up_at:
            raise TimeoutError(f"not reached in {_GIVE_UP_S:g} s")
        await asyncio.sleep(pause_s)


async def _measure_get(
    db: etlstore.Database, direct: etlstore.Database, ids: list[UUID], plan: _Plan, out: _Measured
) -> None:
    """get_pipeline by id on the primary, through ``db.replica``, on the replica directly.

    And through the primary's read-only pool, where ``replica_at`` falls back.
    """
    targets: dict[str, Executor] = {
        "primary": db,
        "replica": db.replica,
        "replica_direct": direct,
        "primary_read_only": db.replica_at(2**63),
    }

    def run(executor: Executor) -> Callable[[int, int], Awaitable[object]]:
        async def get(i: int, task: int) -> object:
            return await pipelines.get_pipeline(executor, id=ids[i % len(ids)])

        return get

    await interleave(
        {name: run(executor) for name, executor in targets.items()},
        lambda name: out.cell("get_by_id", name, "sequential"),
        rounds=plan.get_rounds,
        calls=plan.get_batch,
        tasks=1,
    )


def _pick_seconds(db: etlstore.Database, calls: int = 100_000) -> float:
    """What choosing the target costs each statement sent through ``db.replica``."""
    pick = db._replicas().pick
    best = float("inf")
    for _ in range(5):
        start = perf_counter()
        for _ in range(calls):
            pick(0)
        best = min(best, (perf_counter() - start) / calls)
    return best


async def _measure_read_your_writes(
    db: etlstore.Database, interval_s: float, samples: int, out: _Measured
) -> None:
    """A commit and its read through ``replica_at(commit_lsn())`` at once; then the wait.

    The wait: from the commit until the router would send that read to the replica.
    """
    mode = _probe_mode(interval_s)
    # Warm up: both pools a read may use open their connections and prepare the statements.
    warm_id = await _new_pipeline(db)
    await db.commit_lsn()
    for executor in (db.replica, db.replica_at(2**63)):
        await pipelines.get_pipeline(executor, id=warm_id)
    fell_back = never = 0
    for _ in range(samples):
        # Commits land at random points of the probe cycle, not just after a probe.
        await asyncio.sleep(random.uniform(0, interval_s))
        pipeline_id = await _new_pipeline(db)
        committed = perf_counter()
        lsn = await db.commit_lsn()
        on_replica = _routed_to_replica(db, lsn)
        read = await pipelines.get_pipeline(db.replica_at(lsn), id=pipeline_id)
        out.cell("read_at_commit_lsn", "replica_at", mode).latencies_s.append(
            perf_counter() - committed
        )
        assert read is not None, "read-your-writes broken: the row was not found"
        fell_back += not on_replica

        async def routed(at: int = lsn) -> bool:
            return _routed_to_replica(db, at)

        try:
            await _wait_until(routed, pause_s=0.001)
        except TimeoutError:
            never += 1
            continue
        out.cell("commit_to_routed", "replica_at", mode).latencies_s.append(
            perf_counter() - committed
        )
    out.fallbacks[interval_s] = (fell_back, samples)
    out.never_routed[interval_s] = never


async def _measure_visible(
    db: etlstore.Database, replica: asyncpg.Connection, samples: int, out: _Measured
) -> None:
    """A commit on the primary until its row is readable on the replica (polled back to back)."""
    for _ in range(samples):
        pipeline_id = await _new_pipeline(db)
        committed = perf_counter()

        async def visible(at: UUID = pipeline_id) -> bool:
            return bool(await replica.fetchval(_ROW_ON_REPLICA_SQL, at))

        await _wait_until(visible)
        out.cell("commit_to_visible", "replica", "server").latencies_s.append(
            perf_counter() - committed
        )


async def _measure_copy_lag(
    db: etlstore.Database,
    primary: asyncpg.Connection,
    replica: asyncpg.Connection,
    records: list[CopyPipelineExecutionsRecord],
    copies: int,
    out: _Measured,
) -> None:
    """COPY of 10,000 executions, then the time until the replica has replayed its commit."""

    async def wait_replayed() -> None:
        # With synchronous_commit on, the written position is past the commit's record.
        position = await primary.fetchval(_WAL_POSITION_SQL)

        async def replayed() -> bool:
            return bool(await replica.fetchval(_REPLAYED_SQL, position))

        await _wait_until(replayed)

    for _ in range(copies):
        before = await primary.fetchval(_WAL_POSITION_SQL)
        start = perf_counter()
        await pipeline_executions.copy_pipeline_executions(db, records=records)
        committed = perf_counter()
        after = await primary.fetchval(_WAL_POSITION_SQL)
        await wait_replayed()
        out.cell("copy_10k", "primary", "sequential").latencies_s.append(committed - start)
        out.cell("copy_10k_to_replayed", "replica", "server").latencies_s.append(
            perf_counter() - committed
        )
        out.wal_bytes.append(after - before)
        await primary.execute(_DELETE_COPIED_SQL)  # untimed: the next COPY finds the same table
        await wait_replayed()


async def _measure_throughput(
    db: etlstore.Database, ids: list[UUID], plan: _Plan, out: _Measured
) -> None:
    """Reads at 8 and 16 at once: all on the primary, all on the replica, alternating."""

    def run(target: str) -> Callable[[int, int], Awaitable[object]]:
        async def get(i: int, task: int) -> object:
            on_primary = target == "primary" or (target == "spread" and i % 2 == 0)
            executor: Executor = db if on_primary else db.replica
            return await pipelines.get_pipeline(executor, id=ids[i % len(ids)])

        return get

    for tasks in _CONCURRENCY:
        mode = f"concurrent_{tasks}"

        def cell(name: str, mode: str = mode) -> Cell:
            return out.cell("throughput", name, mode)

        await interleave(
            {target: run(target) for target in _THROUGHPUT_TARGETS},
            cell,
            rounds=plan.throughput_rounds,
            calls=plan.throughput_batch,
            tasks=tasks,
        )


def _copy_records(ids: list[UUID]) -> list[CopyPipelineExecutionsRecord]:
    now = datetime.now(UTC)
    return [
        CopyPipelineExecutionsRecord(
            ids[n % len(ids)],
            ExecutionStatus.SUCCEEDED,
            TriggerKind.API,
            now - timedelta(minutes=5),
            now - timedelta(minutes=4),
            now,
            n,
            "bench-replica-copy",
        )
        for n in range(_COPY_ROWS)
    ]


@contextlib.asynccontextmanager
async def _connected(pair: Pair, probe_interval_s: float) -> AsyncIterator[etlstore.Database]:
    async with etlstore.connect(
        pair.primary_dsn,
        max_size=max(_CONCURRENCY),
        slow_query_s=None,
        replicas=[pair.replica_dsn],
        replica_probe_interval_s=probe_interval_s,
    ) as db:
        yield db


async def _measure(pair: Pair, plan: _Plan, load: float, console: Console) -> _Measured:
    out = _Measured(load)
    async with contextlib.AsyncExitStack() as stack:
        db = await stack.enter_async_context(_connected(pair, _PROBE_INTERVALS_S[0]))
        await seed(db, _SCALE)
        ids: list[UUID] = [r[0] for r in await db.fetch("SELECT id FROM pipelines ORDER BY id")]
        direct = await stack.enter_async_context(
            etlstore.connect(pair.replica_dsn, max_size=4, slow_query_s=None)
        )
        primary = await asyncpg.connect(pair.primary_dsn)
        stack.push_async_callback(primary.close)
        replica = await asyncpg.connect(pair.replica_dsn)
        stack.push_async_callback(replica.close)
        console.print("replicas: get by id")
        await _measure_get(db, direct, ids, plan, out)
        out.pick_s = _pick_seconds(db)
        console.print("replicas: read throughput")
        await _measure_throughput(db, ids, plan, out)
        console.print("replicas: commit to visible, read-your-writes")
        await _measure_visible(db, replica, plan.visible, out)
        for interval_s in _PROBE_INTERVALS_S:
            async with _connected(pair, interval_s) as probed:
                await _measure_read_your_writes(probed, interval_s, plan.commits[interval_s], out)
        console.print("replicas: COPY 10,000 rows and replay")
        await _measure_copy_lag(db, primary, replica, _copy_records(ids), plan.copies, out)
    return out


# -- the report ----------------------------------------------------------------------------------


def _median_ratio(cell: Cell | None, base: Cell | None) -> float | None:
    if cell is None or base is None or not cell.latencies_s or not base.latencies_s:
        return None
    return round(latency_ms(cell, 0.5) / latency_ms(base, 0.5), 3)


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _quantiles(cell: Cell | None) -> list[str]:
    """p50, p99 and max in ms."""
    if cell is None or not cell.latencies_s:
        return ["-", "-", "-"]
    return [f"{latency_ms(cell, q):.3f}" for q in (0.5, 0.99)] + [
        f"{max(cell.latencies_s) * 1000:.3f}"
    ]


def _markdown(measured: _Measured, when: str) -> str:
    cells = measured.cells

    def get(op: str, impl: str, mode: str) -> Cell | None:
        return cells.get((op, impl, _LOOP, mode))

    primary = get("get_by_id", "primary", "sequential")
    titles = {
        "primary": "primary (`db`)",
        "replica": "`db.replica` (routed to the replica)",
        "replica_direct": "replica without routing (a Database on its DSN)",
        "primary_read_only": "`db.replica_at(lsn)` falling back (primary's read-only pool)",
    }
    out = [
        "# Read replicas",
        "",
        f"{when}, {machine()}{' (quick run: few samples)' if quick() else ''}. A primary and a "
        "streaming replica (`pg_basebackup -R`) on this host, 127.0.0.1, fsync off, "
        f"synchronous_commit on; one client process, {_LOOP} event loop. Both servers and the "
        "client share the same cores: a replica here adds no CPU. Load average at the start: "
        f"{measured.load_at_start:.2f}.",
        "",
        "## get_pipeline by id, one task: the cost of routing",
        "",
        "reads/s is calls over the wall time of the batches (so slow outliers weigh in); "
        "÷ primary divides reads/s (higher: faster than the primary), p50 ÷ divides medians "
        "(lower: faster).",
        "",
        "| target | p50 ms | p99 ms | reads/s | ÷ primary | p50 ÷ primary p50 |",
        "|---|---|---|---|---|---|",
    ]
    for impl in _GET_TARGETS:
        cell = get("get_by_id", impl, "sequential")
        p50, p99, _ = _quantiles(cell)
        per_s = _fmt(cell.ops_per_s if cell else None, ",.0f")
        medians = _median_ratio(cell, primary)
        out.append(
            f"| {titles[impl]} | {p50} | {p99} | {per_s} | {_fmt(ops_ratio(cell, primary))} | "
            f"{_fmt(medians)} |"
        )
    via_router = get("get_by_id", "replica", "sequential")
    direct = get("get_by_id", "replica_direct", "sequential")
    pick_us = None if measured.pick_s is None else measured.pick_s * 1e6
    out += [
        "",
        "Routing itself, `db.replica` against the replica without routing: reads/s ÷ "
        f"{_fmt(ops_ratio(via_router, direct))}, p50 ÷ {_fmt(_median_ratio(via_router, direct))}"
        f"; the routing decision (`Router.pick`) takes {_fmt(pick_us, '.3f')} µs per statement.",
        "",
        "## Read-your-writes: a commit, then `db.replica_at(await db.commit_lsn())`",
        "",
        "Read: `commit_lsn()` and the read, timed from the commit. Routed: from the commit until "
        "the router knows the replica replayed it (its probe's last reading).",
        "",
        "| probe interval | read p50 ms | read p99 ms | ran on the primary | "
        "commit → routed p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for interval_s in _PROBE_INTERVALS_S:
        mode = _probe_mode(interval_s)
        read50, read99, _ = _quantiles(get("read_at_commit_lsn", "replica_at", mode))
        routed = _quantiles(get("commit_to_routed", "replica_at", mode))
        fell_back, reads = measured.fallbacks.get(interval_s, (0, 0))
        never = measured.never_routed.get(interval_s, 0)
        note = f" ({never} never routed in {_GIVE_UP_S:g} s)" if never else ""
        out.append(
            f"| {interval_s:g} s | {read50} | {read99} | {fell_back}/{reads}{note} | "
            + " | ".join(routed)
            + " |"
        )
    visible = _quantiles(get("commit_to_visible", "replica", "server"))
    copied = _quantiles(get("copy_10k", "primary", "sequential"))
    replayed = _quantiles(get("copy_10k_to_replayed", "replica", "server"))
    wal_mb = (
        sum(measured.wal_bytes) / len(measured.wal_bytes) / 2**20 if measured.wal_bytes else None
    )
    out += [
        "",
        "Commit → row readable on the replica (polled back to back on a connection to it): "
        f"p50 {visible[0]} ms, p99 {visible[1]} ms, max {visible[2]} ms.",
        "",
        f"## Replication lag under a write load: COPY of {_COPY_ROWS:,} executions",
        "",
        "| COPY p50 ms | COPY p99 ms | WAL per COPY | commit → replayed p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|",
        f"| {copied[0]} | {copied[1]} | {_fmt(wal_mb, '.1f')} MiB | " + " | ".join(replayed) + " |",
        "",
        "## get_pipeline by id, many tasks at once: reads/s",
        "",
        "| tasks | primary only | replica only | spread over both | spread ÷ primary | "
        "p99 ms primary / spread |",
        "|---|---|---|---|---|---|",
    ]
    for tasks in _CONCURRENCY:
        mode = f"concurrent_{tasks}"
        by = {t: get("throughput", t, mode) for t in _THROUGHPUT_TARGETS}
        ops = [_fmt(c.ops_per_s if c else None, ",.0f") for c in by.values()]
        p99s = [_quantiles(by[t])[1] for t in ("primary", "spread")]
        ratio = _fmt(ops_ratio(by["spread"], by["primary"]))
        out.append(f"| {tasks} | {' | '.join(ops)} | {ratio} | {' / '.join(p99s)} |")
    return "\n".join(out) + "\n"


def _write(measured: _Measured, console: Console) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    markdown = _markdown(measured, when)
    meta: dict[str, Any] = {
        "when": when,
        "machine": machine(),
        "quick": quick(),
        "load_at_start": measured.load_at_start,
        "fallbacks": {f"{k:g}": v for k, v in measured.fallbacks.items()},
        "never_routed": {f"{k:g}": v for k, v in measured.never_routed.items()},
        "wal_bytes_per_copy": measured.wal_bytes,
        "pick_s": measured.pick_s,
    }
    written = write_side_report(
        results_folder(), "replicas", markdown, meta, measured.cells.values()
    )
    console.print(markdown, soft_wrap=True, markup=False, highlight=False)
    console.print(f"written: {written.relative_to(ROOT)}, replicas.json")


# -- the tests: one measurement, replayed per cell -----------------------------------------------


@pytest.fixture(scope="module")
def replica_results(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> _Measured:
    """Start the pair, measure everything once, write the report; skip if no replica starts."""
    load = os.getloadavg()[0]
    capture: Any = pytestconfig.pluginmanager.getplugin("capturemanager")
    with contextlib.ExitStack() as stack, capture.global_and_fixture_disabled():
        try:
            pair = stack.enter_context(
                replica_pair(
                    tmp_path_factory.mktemp("bench-replicas"),
                    migrations=ROOT / "migrations",
                    database="bench_replicas",
                )
            )
        except (EmbeddedServerError, RuntimeError) as exc:
            pytest.skip(f"cannot start a primary and a streaming replica here: {exc}")
        console = Console(stderr=True)
        console.print()
        loop = new_loop(_LOOP)
        try:
            measured = loop.run_until_complete(
                _measure(pair, _QUICK if quick() else _FULL, load, console)
            )
        finally:
            loop.close()
        _write(measured, console)
    return measured


def _replay(
    benchmark: BenchmarkFixture,
    measured: _Measured,
    op: str,
    impl: str,
    mode: str,
    *,
    base_impl: str | None = None,
) -> None:
    replay(benchmark, Results(measured.cells), op, impl, _LOOP, mode)
    base = measured.cells.get((op, base_impl, _LOOP, mode)) if base_impl else None
    benchmark.extra_info["ratio_to_primary"] = ops_ratio(
        measured.cells.get((op, impl, _LOOP, mode)), base
    )


@pytest.mark.parametrize("target", _GET_TARGETS)
def test_get_by_id_on_primary_and_through_replica_routing(
    benchmark: BenchmarkFixture, replica_results: _Measured, target: str
) -> None:
    _replay(benchmark, replica_results, "get_by_id", target, "sequential", base_impl="primary")


@pytest.mark.parametrize("tasks", _CONCURRENCY)
@pytest.mark.parametrize("target", _THROUGHPUT_TARGETS)
def test_read_throughput_primary_replica_and_spread(
    benchmark: BenchmarkFixture, replica_results: _Measured, target: str, tasks: int
) -> None:
    mode = f"concurrent_{tasks}"
    _replay(benchmark, replica_results, "throughput", target, mode, base_impl="primary")


@pytest.mark.parametrize("interval_s", _PROBE_INTERVALS_S)
def test_read_at_commit_lsn_right_after_the_commit(
    benchmark: BenchmarkFixture, replica_results: _Measured, interval_s: float
) -> None:
    _replay(benchmark, replica_results, "read_at_commit_lsn", "replica_at", _probe_mode(interval_s))
    fell_back, reads = replica_results.fallbacks[interval_s]
    benchmark.extra_info["fell_back_to_primary"] = f"{fell_back}/{reads}"


@pytest.mark.parametrize("interval_s", _PROBE_INTERVALS_S)
def test_commit_until_replica_at_routes_to_the_replica(
    benchmark: BenchmarkFixture, replica_results: _Measured, interval_s: float
) -> None:
    _replay(benchmark, replica_results, "commit_to_routed", "replica_at", _probe_mode(interval_s))


def test_commit_until_the_row_is_readable_on_the_replica(
    benchmark: BenchmarkFixture, replica_results: _Measured
) -> None:
    _replay(benchmark, replica_results, "commit_to_visible", "replica", "server")


def test_copy_10k_executions_on_the_primary(
    benchmark: BenchmarkFixture, replica_results: _Measured
) -> None:
    _replay(benchmark, replica_results, "copy_10k", "primary", "sequential")


def test_replica_replays_a_10k_copy(
    benchmark: BenchmarkFixture, replica_results: _Measured
) -> None:
    _replay(benchmark, replica_results, "copy_10k_to_replayed", "replica", "server")
    benchmark.extra_info["wal_bytes_per_copy"] = replica_results.wal_bytes
