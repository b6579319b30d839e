"""Many workers and consumers at once: everything handled exactly once, limits held."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID

import pytest

import etlstore
from etlstore import Database
from etlstore.queries import events
from etlstore.queries.models import Event, PipelineExecution, StepExecution
from etlstore.services.events import EventIn, ingest_events, run_event_consumer
from etlstore.services.worker import run_pipeline_worker

from ._factories import make_pipeline

_RUNNING_OVER_LIMIT = """
SELECT count(*) FROM (
    SELECT p.id FROM pipelines AS p
    JOIN pipeline_executions AS e ON e.pipeline_id = p.id AND e.status = 'running'
    GROUP BY p.id, p.max_concurrent_executions
    HAVING count(*) > p.max_concurrent_executions
) AS over
"""


@pytest.fixture
async def pool(migrated_database: str) -> AsyncIterator[Database]:
    """A pool large enough for every worker, the monitor and the test itself."""
    async with etlstore.connect(migrated_database, min_size=4, max_size=16) as database:
        yield database


async def _queue(db: Database, pipeline_id: UUID, count: int) -> None:
    await db.execute(
        "INSERT INTO pipeline_executions (pipeline_id, triggered_by)"
        " SELECT $1, 'schedule' FROM generate_series(1, $2)",
        pipeline_id,
        count,
    )


async def _workers(
    db: Database,
    count: int,
    handler: Callable[[PipelineExecution, list[StepExecution]], Awaitable[int]],
    done: Callable[[], Awaitable[bool]],
) -> list[int]:
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(
            run_pipeline_worker(
                db, worker_id=f"w{n}", handler=handler, stop=stop, batch=4, idle_sleep=0.005
            )
        )
        for n in range(count)
    ]
    try:
        async with asyncio.timeout(60):
            # Polling the database is the point: the state to wait for lives there.
            while not await done():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        stop.set()
    return await asyncio.gather(*tasks)


async def test_eight_workers_claim_each_of_1000_executions_exactly_once(pool: Database) -> None:
    for n in range(20):
        pipeline = await make_pipeline(pool, f"p{n}", max_concurrent_executions=1 + n % 3)
        await _queue(pool, pipeline.id, 25)
    wide = await make_pipeline(pool, "wide", max_concurrent_executions=1000)
    await _queue(pool, wide.id, 500)
    queued = {r["id"] for r in await pool.fetch("SELECT id FROM pipeline_executions")}
    handled: Counter[int] = Counter()

    async def handler(execution: PipelineExecution, steps: list[StepExecution]) -> int:
        handled[execution.id] += 1
        return 1

    async def all_succeeded() -> bool:
        left = await pool.fetchval(
            "SELECT count(*) FROM pipeline_executions WHERE status <> 'succeeded'"
        )
        return bool(left == 0)

    ran = await _workers(pool, 8, handler, all_succeeded)

    assert len(queued) == 1000
    assert set(handled) == queued
    assert max(handled.values()) == 1
    assert sum(ran) == 1000
    assert sum(1 for r in ran if r > 0) > 1  # the work was in fact shared


async def test_max_concurrent_executions_is_never_exceeded(pool: Database) -> None:
    limits = {}
    for n, limit in enumerate([1, 2, 3, 1]):
        pipeline = await make_pipeline(pool, f"p{n}", max_concurrent_executions=limit)
        limits[pipeline.id] = limit
        await _queue(pool, pipeline.id, 30)
    running: Counter[UUID] = Counter()
    peaks: Counter[UUID] = Counter()
    monitor_saw_over: list[int] = []

    async def handler(execution: PipelineExecution, steps: list[StepExecution]) -> int:
        running[execution.pipeline_id] += 1
        peaks[execution.pipeline_id] = max(
            peaks[execution.pipeline_id], running[execution.pipeline_id]
        )
        await asyncio.sleep(0.002)  # hold the execution so that claims overlap
        running[execution.pipeline_id] -= 1
        return 0

    async def all_succeeded() -> bool:
        # One statement: one snapshot of every pipeline's running executions.
        monitor_saw_over.append(int(await pool.fetchval(_RUNNING_OVER_LIMIT)))
        left = await pool.fetchval(
            "SELECT count(*) FROM pipeline_executions WHERE status <> 'succeeded'"
        )
        return bool(left == 0)

    await _workers(pool, 8, handler, all_succeeded)

    assert all(peaks[p] <= limit for p, limit in limits.items())
    assert peaks[next(p for p, limit in limits.items() if limit == 3)] > 1  # limits were reached
    assert set(monitor_saw_over) == {0}


async def test_four_consumers_process_each_event_exactly_once(pool: Database) -> None:
    await ingest_events(pool, [EventIn("e", {"n": n}) for n in range(5_000)])
    handled: Counter[UUID] = Counter()
    stop = asyncio.Event()

    async def handler(event: Event) -> object:
        handled[event.id] += 1
        if len(handled) == 5_000:
            stop.set()
        await asyncio.sleep(0)
        return {"seen_by": event.claimed_by}

    consumers = [
        run_event_consumer(
            pool, consumer_id=f"c{n}", handler=handler, stop=stop, batch=50, idle_sleep=0.005
        )
        for n in range(4)
    ]
    async with asyncio.timeout(60):
        claimed = await asyncio.gather(*consumers)

    assert sum(claimed) == 5_000
    assert len(handled) == 5_000
    assert max(handled.values()) == 1
    assert await events.count_pending_events(pool) == 0
    statuses = await pool.fetch("SELECT status::text, count(*) FROM events GROUP BY 1")
    assert [tuple(r) for r in statuses] == [("done", 5_000)]
