"""``etlstore demo``: the platform's store under a live mixed workload, against its targets.

API readers, a scheduler queueing runs, workers claiming and finishing them, an event ingester
and consumers, and metric batches share one ``Database`` for a fixed time. Every call goes
through the generated queries (or the services built on them) and is timed as the caller sees
it; a live table shows throughput and p99 per operation, and the run ends with the table of
operations against the targets of ``_demo_targets``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import perf_counter
from typing import Final, TypeVar
from uuid import UUID, uuid4

from rich.console import Console
from rich.live import Live
from rich.table import Table

import etlstore
from etlstore._demo_seed import SEED_PIPELINE_PREFIX, Scale, seed
from etlstore._demo_targets import OPERATIONS, verdict
from etlstore.queries import component_metrics, events, pipeline_executions, pipelines, users
from etlstore.queries.models import TriggerKind
from etlstore.services import worker

__all__ = ["DEMO_SCALE", "DemoResult", "run_demo"]

#: 1,000 pipelines with 5,000 steps, 100,000 executions and events, 10,000 metrics.
DEMO_SCALE: Final = Scale(pipelines=1_000, executions=100_000, events=100_000, metrics=10_000)

_T = TypeVar("_T")

_TARGET_MS: Final = {op.key: op.p99_target_ms for op in OPERATIONS}

# (label, key of its target in _demo_targets or None), in display order.
_OPS: Final = (
    ("get pipeline", "get"),
    ("list executions page (50)", "list_page"),
    ("pipeline with steps (nested)", "nested"),
    ("user permissions", "permissions"),
    ("create pipeline", "create"),
    ("enqueue execution", None),
    ("claim execution", "claim"),
    ("finish execution", None),
    ("fail + retry (3-statement tx)", "transaction"),
    ("COPY 1,000 events", "bulk_1000"),
    ("claim 50 events", None),
    ("mark event done", None),
    ("COPY 1,000 metrics", "bulk_1000"),
)

_SAMPLE_IDS_SQL: Final = """-- demo_sample_ids (etlstore demo)
SELECT (SELECT array_agg(id) FROM (SELECT id FROM pipelines WHERE name LIKE 'seed-pipeline-%'
                                   ORDER BY name LIMIT 2000) AS p),
       (SELECT array_agg(id) FROM (SELECT id FROM users ORDER BY username LIMIT 500) AS u),
       (SELECT array_agg(id) FROM (SELECT id FROM components ORDER BY id LIMIT 400) AS c),
       (SELECT array_agg(id) FROM (SELECT id FROM job_executions ORDER BY id LIMIT 1000) AS j)
"""


@dataclass
class _Recorder:
    """Latencies per operation: all of them, and the ones since the last live refresh."""

    total: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op, _ in _OPS})
    recent: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op, _ in _OPS})

    async def timed(self, op: str, call: Awaitable[_T]) -> _T:
        start = perf_counter()
        result = await call
        seconds = perf_counter() - start
        self.total[op].append(seconds)
        self.recent[op].append(seconds)
        return result

    def take_recent(self) -> dict[str, list[float]]:
        recent, self.recent = self.recent, {op: [] for op, _ in _OPS}
        return recent


@dataclass(frozen=True)
class DemoResult:
    """What a demo run did: calls and latencies per operation, and whether it was interrupted."""

    latencies: dict[str, list[float]]
    elapsed_s: float
    interrupted: bool


@dataclass(frozen=True)
class _Ids:
    pipelines: list[UUID]
    users: list[UUID]
    components: list[UUID]
    job_executions: list[int]


def _p(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


# The workload: each loop runs until `stop` is set, and yields to the others between calls.


async def _reader(db: etlstore.Database, ids: _Ids, rec: _Recorder, stop: asyncio.Event) -> None:
    rng = random.Random()
    while not stop.is_set():
        pipeline_id = rng.choice(ids.pipelines)
        pick = rng.random()
        if pick < 0.45:
            await rec.timed("get pipeline", pipelines.get_pipeline(db, id=pipeline_id))
        elif pick < 0.7:
            page = pipeline_executions.list_pipeline_executions(
                db, pipeline_id=pipeline_id, before_queued_at=None, before_id=None, limit=50
            )
            await rec.timed("list executions page (50)", page)
        elif pick < 0.9:
            nested = pipelines.get_pipeline_with_steps(db, id=pipeline_id)
            await rec.timed("pipeline with steps (nested)", nested)
        else:
            user_id = rng.choice(ids.users)
            await rec.timed("user permissions", users.list_user_permissions(db, user_id=user_id))
        await asyncio.sleep(0)


async def _scheduler(db: etlstore.Database, ids: _Ids, rec: _Recorder, stop: asyncio.Event) -> None:
    rng = random.Random()
    while not stop.is_set():
        for _ in range(20):
            queued = pipeline_executions.enqueue_pipeline_execution(
                db,
                pipeline_id=rng.choice(ids.pipelines),
                triggered_by=TriggerKind.SCHEDULE,
                triggered_by_user_id=None,
                idempotency_key=None,
                context={"source": "demo"},
            )
            await rec.timed("enqueue execution", queued)
        created = pipelines.create_pipeline(
            db,
            name=f"demo-{uuid4()}",
            description="created by etlstore demo",
            environment_variables={"TARGET": "warehouse"},
            schedule_expression=None,
            timezone="UTC",
            max_concurrent_executions=1,
            timeout_seconds=None,
            retry_attempts=0,
            retry_delay_seconds=60,
            is_paused=True,
        )
        await rec.timed("create pipeline", created)
        await _pause(stop, 0.05)


async def _worker(
    db: etlstore.Database, worker_id: str, rec: _Recorder, stop: asyncio.Event
) -> None:
    rng = random.Random()
    while not stop.is_set():
        claim = worker.claim_pipeline_executions(db, worker_id=worker_id, limit=1)
        claimed = await rec.timed("claim execution", claim)
        if not claimed:
            await _pause(stop, 0.02)
            continue
        for execution in claimed:
            if rng.random() < 0.1:  # a failure: marked, steps cancelled, retry queued, atomically
                failed = worker.fail_pipeline_execution(
                    db, execution.id, worker_id=worker_id, error="demo: simulated failure"
                )
                await rec.timed("fail + retry (3-statement tx)", failed)
            else:
                done = worker.succeed_pipeline_execution(
                    db, execution.id, worker_id=worker_id, rows_processed=rng.randrange(10_000)
                )
                await rec.timed("finish execution", done)


async def _ingester(db: etlstore.Database, rec: _Recorder, stop: asyncio.Event) -> None:
    batch = 0
    while not stop.is_set():
        batch += 1
        records = [
            events.CopyEventsRecord("file.arrived", {"uri": f"s3://landing/demo/{batch}/{i}"}, None)
            for i in range(1_000)
        ]
        await rec.timed("COPY 1,000 events", events.copy_events(db, records=records))
        await _pause(stop, 0.2)


async def _consumer(
    db: etlstore.Database, consumer_id: str, rec: _Recorder, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        claim = events.claim_events(db, consumer_id=consumer_id, limit=50)
        claimed = await rec.timed("claim 50 events", claim)
        if not claimed:
            await _pause(stop, 0.05)
        for event in claimed:
            done = events.mark_event_done(
                db, task_context={"rows": 1}, id=event.id, consumer_id=consumer_id
            )
            await rec.timed("mark event done", done)


async def _metrics(db: etlstore.Database, ids: _Ids, rec: _Recorder, stop: asyncio.Event) -> None:
    rng = random.Random()
    while not stop.is_set():
        now = datetime.now(UTC)
        records = [
            component_metrics.CopyComponentMetricsRecord(
                rng.choice(ids.components),
                rng.choice(ids.job_executions),
                "rows_per_second",
                rng.random() * 1000,
                now,
            )
            for _ in range(1_000)
        ]
        copy = component_metrics.copy_component_metrics(db, records=records)
        await rec.timed("COPY 1,000 metrics", copy)
        await _pause(stop, 0.5)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


# The display: a table refreshed in place on a terminal, a plain line now and then otherwise.


def _live_table(recent: dict[str, list[float]], window_s: float, elapsed_s: float) -> Table:
    table = Table(title=f"etlstore demo: live, {elapsed_s:.0f} s", title_justify="left")
    for name, justify in (("operation", "left"), ("ops/s", "right"), ("p99 ms", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for op, _ in _OPS:
        table.add_row(op, f"{len(recent[op]) / window_s:.0f}", _ms(_p(recent[op], 0.99)))
    return table


def _plain_line(recent: dict[str, list[float]], window_s: float, elapsed_s: float) -> str:
    parts = [
        f"{op.split(' (')[0]} {len(values) / window_s:.0f}/s p99 {_ms(_p(values, 0.99))}ms"
        for op, values in recent.items()
        if values
    ]
    return f"[{elapsed_s:4.0f} s] " + " | ".join(parts)


def final_table(result: DemoResult) -> Table:
    """Every operation: calls, throughput, p50 and p99 against its target."""
    title = f"etlstore demo: {result.elapsed_s:.1f} s" + (
        " (interrupted)" if result.interrupted else ""
    )
    table = Table(title=title, title_justify="left")
    for name in ("operation", "calls", "ops/s", "p50 ms", "p99 ms", "target p99", "result"):
        table.add_column(name, justify="left" if name == "operation" else "right")
    for op, key in _OPS:
        values = result.latencies[op]
        p99 = _p(values, 0.99)
        target = _TARGET_MS.get(key) if key else None
        table.add_row(
            op,
            f"{len(values):,}",
            f"{len(values) / result.elapsed_s:.0f}" if result.elapsed_s else "-",
            _ms(_p(values, 0.5)),
            _ms(p99),
            "-" if target is None else f"< {target:g} ms",
            verdict(None if p99 is None else p99 * 1000, target, lower_is_better=True),
        )
    return table


async def _show(rec: _Recorder, console: Console, stop: asyncio.Event, started: float) -> None:
    if console.is_terminal:
        with Live(console=console, auto_refresh=False) as live:
            while not stop.is_set():
                await _pause(stop, 1.0)
                elapsed = perf_counter() - started
                live.update(_live_table(rec.take_recent(), 1.0, elapsed), refresh=True)
        return
    last = started
    while not stop.is_set():
        await _pause(stop, 5.0)
        now = perf_counter()
        line = _plain_line(rec.take_recent(), now - last, now - started)
        console.print(line, soft_wrap=True)
        last = now


async def _workload(
    db: etlstore.Database, seconds: float, console: Console, stop: asyncio.Event
) -> DemoResult:
    row = await db.fetchrow(_SAMPLE_IDS_SQL)
    assert row is not None
    ids = _Ids(*(list(value or []) for value in row))
    if not ids.pipelines:
        raise RuntimeError(f"no {SEED_PIPELINE_PREFIX}* pipelines: the seed did not run")
    rec = _Recorder()
    started = perf_counter()
    loops: list[Awaitable[None]] = [
        *(_reader(db, ids, rec, stop) for _ in range(4)),
        _scheduler(db, ids, rec, stop),
        *(_worker(db, f"demo-worker-{n}", rec, stop) for n in range(2)),
        _ingester(db, rec, stop),
        *(_consumer(db, f"demo-consumer-{n}", rec, stop) for n in range(2)),
        _metrics(db, ids, rec, stop),
        _show(rec, console, stop, started),
    ]
    tasks = [asyncio.ensure_future(loop) for loop in loops]
    timer = asyncio.get_running_loop().call_later(seconds, stop.set)
    try:
        await asyncio.gather(*tasks)
    finally:
        timer.cancel()
        for task in tasks:
            task.cancel()
    return DemoResult(rec.total, perf_counter() - started, interrupted=False)


async def _main(dsn: str, seconds: float, scale: Scale, console: Console) -> DemoResult | None:
    stop = asyncio.Event()
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        interrupted.set()
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        # Readers and writers share one pool: 12 connections for 11 workload tasks.
        async with etlstore.connect(dsn, min_size=4, max_size=12, slow_query_s=None) as db:
            seeding = asyncio.ensure_future(seed(db, scale, console))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({seeding, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not seeding.done():
                seeding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await seeding
                stopped.cancel()
                return None
            stopped.cancel()
            added = seeding.result()
            console.print("seed: " + (f"{added:,} rows added" if added else "reused"))
            console.print(f"workload: {seconds:g} s of mixed traffic (Ctrl-C stops early)")
            result = await _workload(db, seconds, console, stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return DemoResult(result.latencies, result.elapsed_s, interrupted.is_set())


def run_demo(
    dsn: str, *, seconds: float = 20.0, scale: Scale = DEMO_SCALE, console: Console | None = None
) -> int:
    """Seed (reused when present), run the workload, print the final table; 130 if interrupted."""
    console = console or Console()
    if not console.is_terminal:  # a log or CI: wide enough that the final table stays on one line
        console = Console(file=console.file, width=max(console.width, 110))
    result = asyncio.run(_main(dsn, seconds, scale, console))
    if result is None:
        console.print("interrupted while seeding: the next run continues where this one stopped")
        return 130
    console.print(final_table(result))
    console.print(
        "Targets: src/etlstore/_demo_targets.py. Here every call queues behind a dozen busy "
        f"tasks sharing {os.cpu_count()} cores with the server; each operation alone, and next "
        "to raw asyncpg, SQLAlchemy and psycopg, with latency plots: `python3 dev.py bench` "
        "(benchmarks/results/)."
    )
    return 130 if result.interrupted else 0
