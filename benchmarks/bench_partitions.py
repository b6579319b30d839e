"""Partitioning (migration 0007): the same year of rows, unpartitioned and partitioned, compared.

Run: ``.venv/bin/python -m pytest benchmarks/bench_partitions.py -q -p no:cacheprovider``
(``ETLSTORE_BENCH_QUICK=1`` for a smoke run), or ``python3 dev.py bench`` with the other modules.
``ETLSTORE_BENCH_PARTITION_ROWS=2400000`` loads that many rows per table instead (the load takes
most of the time: about 15-20 s per 100,000 rows on 2 cores).

Two databases on the benchmark server: ``unpartitioned`` has migrations 0001-0006 applied,
``partitioned`` all of them, with a monthly partition for each of the twelve past months (made
before the load, so that no row lands in the DEFAULT partition). Both get the same rows: events,
pipeline executions and component metrics spread evenly over the twelve whole UTC months before
this one, half of the events and executions with an idempotency key. Then VACUUM ANALYZE.

Each operation runs in batches on both databases, in an order alternated per round (so that
drift of the machine hits both alike), one task, through ``etlstore.connect`` and the generated
queries. The insert path is the exception on the unpartitioned side: the generated ingest and
enqueue claim their key in the tables 0007 adds, so there it runs what they amount to before
0007: one INSERT ... ON CONFLICT on the table's own UNIQUE constraint (the row not decoded, a
few µs).
Retention runs last, as it removes data: see ``_measure_retention``. The report goes to
``results/partitions.md`` and ``partitions.json`` (``results/quick/`` for a smoke run), and each
cell is replayed into pytest-benchmark like the other modules.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any, Final
from uuid import UUID

import asyncpg
import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from rich.console import Console

import etlstore
from benchmarks._fixtures import ROOT, Results, quick, replay, results_folder
from benchmarks._report import latency_ms, machine, write_side_report
from benchmarks._runner import Cell, interleave
from etlstore._config import with_database
from etlstore._demo_seed import Scale, seed
from etlstore._migrations import apply_migrations
from etlstore.queries import component_metrics, events, pipeline_executions
from etlstore.queries.models import TriggerKind

_LOOP: Final = "asyncio"
_MODE: Final = "sequential"
TARGETS: Final = ("unpartitioned", "partitioned")
_DATABASES: Final = {t: f"bench_partitions_{t}" for t in TARGETS}
_MONTHS: Final = 12
_EVENT_TYPES: Final = ("file.arrived", "table.updated", "schema.changed", "run.requested")
#: The catalog the loaded rows refer to: pipelines, and seed's jobs with their components.
_CATALOG: Final = Scale(pipelines=200, executions=0, events=0, metrics=0)


@dataclass(frozen=True)
class _Plan:
    rows: int  # of each of events, executions and metrics
    rounds: int
    batch: int  # calls per target per round (fewer for the whole-month read)
    retention_rounds: int

    @property
    def whole_month_batch(self) -> int:
        """About 100,000 rows read per round: the calls decode every row of a month of a type."""
        rows_per_call = self.rows // (_MONTHS * len(_EVENT_TYPES))
        return min(self.batch, max(2, 100_000 // max(1, rows_per_call)))


_FULL: Final = _Plan(rows=240_000, rounds=10, batch=100, retention_rounds=3)
_QUICK: Final = _Plan(rows=24_000, rounds=3, batch=20, retention_rounds=1)


def _plan() -> _Plan:
    plan = _QUICK if quick() else _FULL
    rows = os.environ.get("ETLSTORE_BENCH_PARTITION_ROWS")
    return replace(plan, rows=int(rows)) if rows else plan


#: What each operation is, in report order. Named apart from the other modules' operations:
#: pytest-benchmark groups by name.
OPS: Final = {
    "partitions_events_month_page": "events of one type in one month, first 100 "
    "(list_events_by_type)",
    "partitions_events_month_all": "events of one type in one month, all (list_events_by_type)",
    "partitions_metrics_month": "one component's metric aggregates over a month "
    "(list_component_metric_aggregates)",
    "partitions_executions_month": "executions per status queued in a month "
    "(count_pipeline_executions_by_status)",
    "partitions_get_event": "an event by id alone (get_event)",
    "partitions_get_execution": "an execution by id alone (get_pipeline_execution)",
    "partitions_ingest_event": "ingest an event with an idempotency key (ingest_event)",
    "partitions_enqueue_execution": "queue an execution with an idempotency key "
    "(enqueue_pipeline_execution)",
}
_RETENTION: Final = "partitions_retention_month"
_RETENTION_VACUUMED: Final = "partitions_retention_month_vacuumed"
_VACUUM: Final = "partitions_vacuum_after_delete"
_MAINTAIN_IDLE: Final = "partitions_maintain_nothing_to_do"

# -- the data ------------------------------------------------------------------------------------

# $1 rows spread evenly over [$2, $3); ids follow the row number, the same in both databases.
_LOAD_EVENTS_SQL: Final = """-- bench_partitions_load_events (benchmarks)
INSERT INTO events (id, event_type, data, task_context, status, idempotency_key, attempts,
                    created_at, updated_at, processed_at)
SELECT md5('bench-event-' || g)::uuid,
       (ARRAY['file.arrived', 'table.updated', 'schema.changed', 'run.requested'])[1 + g % 4],
       jsonb_build_object('uri', 's3://landing/' || g || '.parquet', 'bytes', (g * 37) % 1000000),
       jsonb_build_object('rows', g % 5000), 'done',
       CASE WHEN g % 2 = 0 THEN 'bench-event-' || g END, 1,
       t.at, t.at + interval '2 seconds', t.at + interval '2 seconds'
FROM generate_series(1, $1::int) AS g,
     LATERAL (SELECT $2::timestamptz + ($3::timestamptz - $2::timestamptz)
                     * ((g - 1)::float8 / $1::int) AS at) AS t
ORDER BY g
"""

_LOAD_EXECUTIONS_SQL: Final = """-- bench_partitions_load_executions (benchmarks)
WITH p AS (
    SELECT array_agg(id ORDER BY name) AS ids FROM pipelines WHERE name LIKE 'seed-pipeline-%'
)
INSERT INTO pipeline_executions (
    id, pipeline_id, status, triggered_by, idempotency_key, queued_at, claimed_by, claimed_at,
    started_at, finished_at, rows_processed, error, context
)
OVERRIDING SYSTEM VALUE
SELECT g, p.ids[1 + (g::bigint * 7919) % cardinality(p.ids)],
       CASE WHEN g % 10 = 1 THEN 'failed' ELSE 'succeeded' END::execution_status,
       (ARRAY['schedule', 'api', 'user']::trigger_kind[])[1 + g % 3],
       CASE WHEN g % 2 = 0 THEN 'bench-run-' || g END,
       t.at, 'bench-worker-' || g % 8, t.at + interval '1 second', t.at + interval '1 second',
       t.at + interval '1 second' * (2 + g % 600), (g * 31) % 100000,
       CASE WHEN g % 10 = 1 THEN 'extract failed: connection reset' END,
       jsonb_build_object('run', g)
FROM p, generate_series(1, $1::int) AS g,
     LATERAL (SELECT $2::timestamptz + ($3::timestamptz - $2::timestamptz)
                     * ((g - 1)::float8 / $1::int) AS at) AS t
ORDER BY g
"""

_LOAD_METRICS_SQL: Final = """-- bench_partitions_load_metrics (benchmarks)
WITH c AS (
    SELECT array_agg(c.id ORDER BY j.name, c.name) AS ids
    FROM components AS c JOIN jobs AS j ON j.id = c.job_id WHERE j.name LIKE 'seed-job-%'
), x AS (
    SELECT array_agg(id ORDER BY id) AS ids FROM job_executions
)
INSERT INTO component_metrics (id, component_id, job_execution_id, metric_name, value, recorded_at)
OVERRIDING SYSTEM VALUE
SELECT g, c.ids[1 + g % cardinality(c.ids)], x.ids[1 + g % cardinality(x.ids)],
       (ARRAY['rows_per_second', 'latency_ms', 'memory_mb', 'errors'])[1 + (g / 7) % 4],
       (g * 37 % 1000)::float8,
       $2::timestamptz + ($3::timestamptz - $2::timestamptz) * ((g - 1)::float8 / $1::int)
FROM c, x, generate_series(1, $1::int) AS g
ORDER BY g
"""

# New rows get ids after the loaded ones.
_SET_SEQUENCES_SQL: Final = """-- bench_partitions_set_sequences (benchmarks)
SELECT setval(pg_get_serial_sequence('pipeline_executions', 'id'), $1::int),
       setval(pg_get_serial_sequence('component_metrics', 'id'), $1::int)
"""

_COMPONENTS_SQL: Final = """-- bench_partitions_components (benchmarks)
SELECT c.id FROM components AS c JOIN jobs AS j ON j.id = c.job_id
WHERE j.name LIKE 'seed-job-%' ORDER BY j.name, c.name
"""
_PIPELINES_SQL: Final = "SELECT id FROM pipelines WHERE name LIKE 'seed-pipeline-%' ORDER BY name"
_PARTITIONS_SQL: Final = "SELECT count(*) FROM maintain_partitions($1)"
_EVENTS_IN_DEFAULT_SQL: Final = "SELECT count(*) FROM events_default"
_COUNT_PARTITIONS_SQL: Final = "SELECT count(*) FROM partitions_of('events'::regclass)"

# -- the insert path before 0007 (the unpartitioned side only) ----------------------------------

_INGEST_EVENT_BEFORE_0007: Final = """-- ingest_event (before migration 0007)
INSERT INTO events (event_type, data, idempotency_key)
VALUES ($2, CAST($3 AS jsonb), $1)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id, event_type, data, task_context, status, idempotency_key, attempts, claimed_by,
          claimed_at, error, created_at, updated_at, processed_at"""

_ENQUEUE_BEFORE_0007: Final = """-- enqueue_pipeline_execution (before migration 0007)
INSERT INTO pipeline_executions (
    pipeline_id, triggered_by, triggered_by_user_id, idempotency_key, context
)
VALUES ($1, CAST($3 AS trigger_kind), CAST($4 AS uuid), $2, CAST($5 AS jsonb))
ON CONFLICT (pipeline_id, idempotency_key) DO NOTHING
RETURNING id, pipeline_id, status, attempt, triggered_by, triggered_by_user_id, idempotency_key,
          queued_at, claimed_by, claimed_at, heartbeat_at, started_at, finished_at,
          rows_processed, error, context, updated_at"""

# -- retention ------------------------------------------------------------------------------------

_DELETE_BEFORE_SQL: Final = "DELETE FROM events WHERE created_at < $1"
_VACUUM_EVENTS_SQL: Final = "VACUUM events"
_VACUUM_KEYS_SQL: Final = "VACUUM event_idempotency_keys"
_SET_RETENTION_SQL: Final = (
    "UPDATE partition_policies SET retention = make_interval(months => $1) "
    "WHERE table_name = 'events'"
)
_MAINTAIN_SQL: Final = "SELECT table_name, action FROM maintain_partitions($1)"


def _month_start(anchor: datetime, months_back: int) -> datetime:
    index = anchor.year * 12 + anchor.month - 1 - months_back
    return anchor.replace(year=index // 12, month=index % 12 + 1)


@dataclass(frozen=True)
class _Data:
    """What the loaded rows are: the month bounds, and the ids the calls pick from."""

    anchor: datetime  # the start of this UTC month: the rows end here
    months: list[tuple[datetime, datetime]]  # oldest first
    event_ids: list[UUID]
    execution_ids: list[int]
    pipeline_ids: dict[str, list[UUID]]  # per target: the same pipelines, their own uuids
    component_ids: dict[str, list[UUID]]

    @staticmethod
    def bounds(anchor: datetime) -> list[tuple[datetime, datetime]]:
        return [
            (_month_start(anchor, _MONTHS - k), _month_start(anchor, _MONTHS - k - 1))
            for k in range(_MONTHS)
        ]


@dataclass
class _Measured:
    plan: _Plan
    cells: dict[tuple[str, str, str, str], Cell] = field(default_factory=dict)
    partitions: int = 0  # of events, DEFAULT included, when the reads ran
    retention_rows: list[int] = field(default_factory=list)  # events per dropped month
    load_s: float = 0.0  # both databases side by side, VACUUM ANALYZE included

    def cell(self, op: str, target: str) -> Cell:
        key = (op, target, _LOOP, _MODE)
        if key not in self.cells:
            self.cells[key] = Cell(op, target, _LOOP, _MODE)
        return self.cells[key]


# -- setting up ----------------------------------------------------------------------------------


def _migrations_up_to_0006(folder: Path) -> Path:
    """A copy of migrations/ without 0007 and later."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in (ROOT / "migrations").glob("000[1-6]_*.sql"):
        shutil.copy(path, folder / path.name)
    return folder


async def _create_databases(server: str) -> None:
    con = await asyncpg.connect(server)
    try:
        for name in _DATABASES.values():
            await con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await con.execute(f'CREATE DATABASE "{name}"')
            # Commits do not wait for the disk, as in the other modules.
            await con.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    finally:
        await con.close()


async def _drop_databases(server: str) -> None:
    con = await asyncpg.connect(server)
    try:
        for name in _DATABASES.values():
            await con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await con.close()


async def _load(db: etlstore.Database, target: str, anchor: datetime, rows: int) -> None:
    await seed(db, _CATALOG, Console(stderr=True, quiet=True))
    months = _Data.bounds(anchor)
    lo, hi = months[0][0], anchor
    if target == "partitioned":
        # A partition per past month before any row arrives: maintain_partitions(at) makes the
        # month holding `at` and the premake ones after it, and skips those that exist.
        for month_start, _ in months:
            await db.fetchval(_PARTITIONS_SQL, month_start)
    await asyncio.gather(
        db.execute(_LOAD_EVENTS_SQL, rows, lo, hi),
        db.execute(_LOAD_EXECUTIONS_SQL, rows, lo, hi),
        db.execute(_LOAD_METRICS_SQL, rows, lo, hi),
    )
    await db.fetchrow(_SET_SEQUENCES_SQL, rows)
    if target == "partitioned":
        assert await db.fetchval(_EVENTS_IN_DEFAULT_SQL) == 0, "rows in the DEFAULT partition"
    await db.execute("VACUUM ANALYZE")


@asynccontextmanager
async def _opened(server: str) -> AsyncIterator[dict[str, etlstore.Database]]:
    async with AsyncExitStack() as stack:
        yield {
            target: await stack.enter_async_context(
                etlstore.connect(
                    with_database(server, name), min_size=3, max_size=3, slow_query_s=None
                )
            )
            for target, name in _DATABASES.items()
        }


# -- measuring -----------------------------------------------------------------------------------

_Run = Callable[[etlstore.Database, str, int], Awaitable[object]]


def _operations(data: _Data) -> dict[str, _Run]:
    """Per operation: ``run(db, target, i)`` for the i-th call (a month, an id, a key by i)."""

    def month(i: int) -> tuple[datetime, datetime]:
        return data.months[i % _MONTHS]

    async def events_page(db: etlstore.Database, target: str, i: int) -> object:
        since, until = month(i)
        kind = _EVENT_TYPES[i // _MONTHS % len(_EVENT_TYPES)]
        return await events.list_events_by_type(
            db, event_type=kind, since=since, until=until, limit=100
        )

    async def events_all(db: etlstore.Database, target: str, i: int) -> object:
        since, until = month(i)
        kind = _EVENT_TYPES[i // _MONTHS % len(_EVENT_TYPES)]
        return await events.list_events_by_type(
            db, event_type=kind, since=since, until=until, limit=1_000_000
        )

    async def metrics_month(db: etlstore.Database, target: str, i: int) -> object:
        since, until = month(i)
        ids = data.component_ids[target]
        return await component_metrics.list_component_metric_aggregates(
            db, component_id=ids[i * 7 % len(ids)], since=since, until=until
        )

    async def executions_month(db: etlstore.Database, target: str, i: int) -> object:
        since, until = month(i)
        return await pipeline_executions.count_pipeline_executions_by_status(
            db, since=since, until=until
        )

    async def get_event(db: etlstore.Database, target: str, i: int) -> object:
        found = await events.get_event(db, id=data.event_ids[i % len(data.event_ids)])
        assert found is not None
        return found

    async def get_execution(db: etlstore.Database, target: str, i: int) -> object:
        ids = data.execution_ids
        found = await pipeline_executions.get_pipeline_execution(db, id=ids[i % len(ids)])
        assert found is not None
        return found

    async def ingest(db: etlstore.Database, target: str, i: int) -> object:
        key, kind, body = f"bench-ingest-{i}", "file.arrived", {"uri": f"s3://in/{i}"}
        if target == "partitioned":
            row: object = await events.ingest_event(
                db, idempotency_key=key, event_type=kind, data=body
            )
        else:
            row = await db.fetchrow(_INGEST_EVENT_BEFORE_0007, key, kind, json.dumps(body))
        assert row is not None
        return row

    async def enqueue(db: etlstore.Database, target: str, i: int) -> object:
        ids = data.pipeline_ids[target]
        pipeline_id, key = ids[i % len(ids)], f"bench-enqueue-{i}"
        if target == "partitioned":
            row: object = await pipeline_executions.enqueue_pipeline_execution(
                db,
                pipeline_id=pipeline_id,
                idempotency_key=key,
                triggered_by=TriggerKind.API,
                triggered_by_user_id=None,
                context={},
            )
        else:
            row = await db.fetchrow(
                _ENQUEUE_BEFORE_0007, pipeline_id, key, TriggerKind.API, None, "{}"
            )
        assert row is not None
        return row

    runs: list[_Run] = [
        events_page, events_all, metrics_month, executions_month,
        get_event, get_execution, ingest, enqueue,
    ]  # fmt: skip
    return dict(zip(OPS, runs, strict=True))


async def _measure_calls(
    dbs: dict[str, etlstore.Database], data: _Data, plan: _Plan, out: _Measured
) -> None:
    """Every operation: a warm-up batch per target, then rounds in alternating order."""
    for op, run in _operations(data).items():
        calls = plan.whole_month_batch if op == "partitions_events_month_all" else plan.batch

        def on(target: str, run: _Run = run) -> Callable[[int, int], Awaitable[object]]:
            async def call(i: int, task: int) -> object:
                return await run(dbs[target], target, i)

            return call

        await interleave(
            {target: on(target) for target in TARGETS},
            functools.partial(out.cell, op),
            rounds=plan.rounds,
            calls=calls,
            tasks=1,
        )


async def _measure_retention(
    dbs: dict[str, etlstore.Database], data: _Data, rounds: int, out: _Measured
) -> None:
    """Removing the oldest month of events: DELETE (then VACUUM) against dropping its partition.

    Each is one statement, timed once per round; round k removes month k, the oldest left, so
    every round finds a month of rows to remove without copying the databases. The VACUUM after
    the DELETE is timed apart and with it: the DELETE alone leaves the rows' space and index
    entries to a VACUUM (here and in production). Dropping a partition leaves nothing behind
    but the month's idempotency keys, which maintain_partitions deletes row by row from
    event_idempotency_keys: that table's VACUUM is timed the same way. The partitioned side runs
    maintain_partitions as ``etlstore partitions maintain`` would, with a retention that expires
    just that month; it also checks the future partitions of all three tables, a fixed cost
    timed alone by a run with nothing to do.
    """
    flat, parted = dbs["unpartitioned"], dbs["partitioned"]

    def timed(op: str, target: str, seconds: float) -> None:
        cell = out.cell(op, target)
        cell.latencies_s.append(seconds)
        cell.calls, cell.wall_s = cell.calls + 1, cell.wall_s + seconds

    for k in range(rounds):
        cutoff = data.months[k][1]
        for target in TARGETS if k % 2 == 0 else TARGETS[::-1]:
            if target == "unpartitioned":
                start = perf_counter()
                status = await flat.execute(_DELETE_BEFORE_SQL, cutoff)
                deleted = perf_counter()
                await flat.execute(_VACUUM_EVENTS_SQL)
                vacuumed = perf_counter()
                out.retention_rows.append(int(status.split()[-1]))
                timed(_RETENTION, target, deleted - start)
                timed(_VACUUM, target, vacuumed - deleted)
                timed(_RETENTION_VACUUMED, target, vacuumed - start)
            else:
                start = perf_counter()
                idle = await parted.fetch(_MAINTAIN_SQL, data.anchor)
                timed(_MAINTAIN_IDLE, target, perf_counter() - start)
                assert idle == [], idle
                await parted.execute(_SET_RETENTION_SQL, _MONTHS - 1 - k)
                start = perf_counter()
                done = await parted.fetch(_MAINTAIN_SQL, data.anchor)
                dropped = perf_counter()
                await parted.execute(_VACUUM_KEYS_SQL)
                vacuumed = perf_counter()
                await parted.execute(_SET_RETENTION_SQL, None)
                assert [tuple(r) for r in done] == [("events", "dropped")], done
                timed(_RETENTION, target, dropped - start)
                timed(_VACUUM, target, vacuumed - dropped)
                timed(_RETENTION_VACUUMED, target, vacuumed - start)


async def _ids(dbs: dict[str, etlstore.Database], anchor: datetime, rows: int) -> _Data:
    """The ids to look up (a sample over the whole year) and each database's catalog ids."""
    sample = range(1, rows + 1, max(1, rows // 5_000))

    async def column(db: etlstore.Database, query: str) -> list[UUID]:
        return [r[0] for r in await db.fetch(query)]

    return _Data(
        anchor=anchor,
        months=_Data.bounds(anchor),
        # As the load makes them: md5('bench-event-' || g)::uuid.
        event_ids=[UUID(hashlib.md5(f"bench-event-{g}".encode()).hexdigest()) for g in sample],
        execution_ids=list(sample),
        pipeline_ids={t: await column(db, _PIPELINES_SQL) for t, db in dbs.items()},
        component_ids={t: await column(db, _COMPONENTS_SQL) for t, db in dbs.items()},
    )


async def _measure(server: str, plan: _Plan, scratch: Path, console: Console) -> _Measured:
    out = _Measured(plan)
    await _create_databases(server)
    try:
        apply_migrations(
            with_database(server, _DATABASES["unpartitioned"]), _migrations_up_to_0006(scratch)
        )
        apply_migrations(with_database(server, _DATABASES["partitioned"]), ROOT / "migrations")
        anchor = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        async with _opened(server) as dbs:
            console.print(f"partitions: loading {plan.rows:,} rows per table into both databases")
            start = perf_counter()
            await asyncio.gather(*(_load(db, t, anchor, plan.rows) for t, db in dbs.items()))
            out.load_s = perf_counter() - start
            console.print(f"partitions: loaded in {out.load_s:.1f} s")
            data = await _ids(dbs, anchor, plan.rows)
            out.partitions = await dbs["partitioned"].fetchval(_COUNT_PARTITIONS_SQL)
            console.print("partitions: reads, lookups by id, inserts")
            await _measure_calls(dbs, data, plan, out)
            console.print("partitions: retention of one month")
            await _measure_retention(dbs, data, plan.retention_rounds, out)
    finally:
        await _drop_databases(server)
    return out


# -- the report ----------------------------------------------------------------------------------


def _p50_ratio(op: str, cells: dict[tuple[str, str, str, str], Cell]) -> float | None:
    """Partitioned p50 ÷ unpartitioned p50 (below 1: partitioned is faster)."""
    mine = cells.get((op, "partitioned", _LOOP, _MODE))
    base = cells.get((op, "unpartitioned", _LOOP, _MODE))
    if mine is None or base is None or not mine.latencies_s or not base.latencies_s:
        return None
    return latency_ms(mine, 0.5) / latency_ms(base, 0.5)


def _row(title: str, op: str, cells: dict[tuple[str, str, str, str], Cell]) -> str:
    figures: list[str] = []
    for target in TARGETS:
        cell = cells.get((op, target, _LOOP, _MODE))
        if cell is None or not cell.latencies_s:
            figures += ["-", "-"]
        else:
            figures += [f"{latency_ms(cell, 0.5):.3f}", f"{latency_ms(cell, 0.99):.3f}"]
    ratio = _p50_ratio(op, cells)
    return (
        f"| {title} | " + " | ".join(figures) + f" | {'-' if ratio is None else f'{ratio:.2f}'} |"
    )


def _markdown(measured: _Measured, when: str) -> str:
    plan, cells = measured.plan, measured.cells
    calls = plan.rounds * plan.batch
    removed = (
        f"{sum(measured.retention_rows) // len(measured.retention_rows):,}"
        if measured.retention_rows
        else "-"
    )
    out = [
        "# Partitioning: the same rows, unpartitioned and partitioned",
        "",
        f"{when}, {machine()}{' (quick run: few samples)' if quick() else ''}. Two databases on "
        f"one server: migrations 0001-0006 (unpartitioned) and all (partitioned: a partition "
        f"per month, {measured.partitions} partitions of events with the future ones and "
        f"DEFAULT). Each holds {plan.rows:,} events, {plan.rows:,} pipeline executions and "
        f"{plan.rows:,} component metrics spread over the {_MONTHS} months before this one "
        "(half the events and executions with an idempotency key), vacuumed and analyzed. One "
        f"task, {_LOOP} event loop, through `etlstore.connect`; {calls:,} calls per cell "
        f"({plan.rounds * plan.whole_month_batch:,} for the whole-month read) in "
        f"{plan.rounds} rounds alternating the "
        "order of the two databases.",
        "",
        "Ratio: partitioned p50 ÷ unpartitioned p50 (below 1: partitioned is faster).",
        "",
        "| operation | unpartitioned p50 ms | p99 ms | partitioned p50 ms | p99 ms | ratio |",
        "|---|---|---|---|---|---|",
        *(_row(title, op, cells) for op, title in OPS.items()),
        "",
        f"## Retention: removing the oldest month of events ({removed} rows)",
        "",
        "Unpartitioned: `DELETE FROM events WHERE created_at < <month end>`, then `VACUUM "
        "events` (which the space and the index entries wait for). Partitioned: "
        "`maintain_partitions()` with a retention expiring that month: the month's keys are "
        "deleted from event_idempotency_keys (row by row: the part that grows with the month), "
        "the partition detached and dropped; then `VACUUM event_idempotency_keys`. One "
        "statement timed per round, "
        f"{plan.retention_rounds} round(s), each on the next month; p99 is the slowest.",
        "",
        "| operation | unpartitioned p50 ms | p99 ms | partitioned p50 ms | p99 ms | ratio |",
        "|---|---|---|---|---|---|",
        _row("DELETE one month / maintain_partitions dropping it", _RETENTION, cells),
        _row("the same, then VACUUM", _RETENTION_VACUUMED, cells),
        _row("the VACUUM alone (events / event_idempotency_keys)", _VACUUM, cells),
        _row("maintain_partitions with nothing to do (the fixed part)", _MAINTAIN_IDLE, cells),
    ]
    return "\n".join(out) + "\n"


def _write(measured: _Measured, console: Console) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    markdown = _markdown(measured, when)
    meta: dict[str, Any] = {
        "when": when,
        "machine": machine(),
        "quick": quick(),
        "rows_per_table": measured.plan.rows,
        "event_partitions": measured.partitions,
        "retention_rows": measured.retention_rows,
        "load_s": measured.load_s,
    }
    written = write_side_report(
        results_folder(), "partitions", markdown, meta, measured.cells.values()
    )
    console.print(markdown, soft_wrap=True, markup=False, highlight=False)
    console.print(f"written: {written.relative_to(ROOT)}, partitions.json")


# -- the tests: one measurement, replayed per cell -----------------------------------------------


@pytest.fixture(scope="module")
def partition_results(
    bench_dsn: str, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> _Measured:
    """Load both databases, measure everything once, write the report."""
    capture: Any = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        console = Console(stderr=True)
        console.print()
        measured = asyncio.run(
            _measure(
                bench_dsn,
                _plan(),
                tmp_path_factory.mktemp("migrations-0001-0006"),
                console,
            )
        )
        _write(measured, console)
    return measured


_CASES: Final = [
    (op, target) for op in (*OPS, _RETENTION, _RETENTION_VACUUMED, _VACUUM) for target in TARGETS
]


@pytest.mark.parametrize(("op", "target"), _CASES)
def test_unpartitioned_and_partitioned(
    benchmark: BenchmarkFixture, partition_results: _Measured, op: str, target: str
) -> None:
    replay(benchmark, Results(partition_results.cells), op, target, _LOOP, _MODE)
    benchmark.extra_info["p50_partitioned_over_unpartitioned"] = _p50_ratio(
        op, partition_results.cells
    )


def test_maintain_partitions_with_nothing_to_do(
    benchmark: BenchmarkFixture, partition_results: _Measured
) -> None:
    replay(benchmark, Results(partition_results.cells), _MAINTAIN_IDLE, "partitioned", _LOOP, _MODE)
