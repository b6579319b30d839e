"""etlstore.services.worker: enqueue, the worker loop, failure with retry, stale claims."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from etlstore import Database
from etlstore.errors import NotFound
from etlstore.queries import pipeline_executions, pipelines, step_executions
from etlstore.queries.models import ExecutionStatus, PipelineExecution, StepExecution
from etlstore.services import InvalidInput
from etlstore.services.worker import (
    claim_pipeline_executions,
    enqueue_pipeline_execution,
    fail_pipeline_execution,
    reap_stale_pipeline_executions,
    run_pipeline_worker,
)

from ._factories import make_pipeline, make_plugin, snapshot

Handler = Callable[[PipelineExecution, list[StepExecution]], Awaitable[int]]


async def _run_until(db: Database, handler: Handler, done: Callable[[], Awaitable[bool]]) -> int:
    """Run one worker until ``done()``; returns how many executions it ran."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_pipeline_worker(
            db, worker_id="w", handler=handler, stop=stop, idle_sleep=0.01, heartbeat_every=0.05
        )
    )
    async with asyncio.timeout(20):
        while not await done():  # noqa: ASYNC110 - the state to wait for is in the database
            await asyncio.sleep(0.01)
    stop.set()
    return await task


async def _statuses(db: Database, pipeline_id: UUID) -> list[tuple[int, ExecutionStatus]]:
    rows = await pipeline_executions.list_pipeline_executions(
        db,
        pipeline_id=pipeline_id,
        before_queued_at=None,
        before_id=None,
        limit=100,
    )
    return sorted((e.attempt, e.status) for e in rows)


async def test_enqueue_validates_the_trigger_and_the_pipeline(db: Database) -> None:
    pipeline = await make_pipeline(db)
    with pytest.raises(InvalidInput) as caught:
        await enqueue_pipeline_execution(db, pipeline.id, triggered_by="cron")
    assert caught.value.field == "triggered_by"
    assert "cron" in str(caught.value)
    with pytest.raises(NotFound, match="pipeline"):
        await enqueue_pipeline_execution(db, uuid4(), triggered_by="api")
    first = await enqueue_pipeline_execution(
        db, pipeline.id, triggered_by="api", idempotency_key="k"
    )
    again = await enqueue_pipeline_execution(
        db, pipeline.id, triggered_by="user", idempotency_key="k"
    )
    assert again == first


async def test_the_worker_records_success_with_rows_and_step_executions(db: Database) -> None:
    plugin = await make_plugin(db)
    pipeline = await make_pipeline(db)
    for position in range(2):
        await pipelines.create_pipeline_step(
            db, pipeline_id=pipeline.id, position=position, plugin_id=plugin.id, configuration={}
        )
    queued = await enqueue_pipeline_execution(db, pipeline.id, triggered_by="schedule")
    seen: list[tuple[int, list[int]]] = []

    async def handler(execution: PipelineExecution, steps: list[StepExecution]) -> int:
        seen.append((execution.id, [s.position for s in steps]))
        return 42

    async def finished() -> bool:
        e = await pipeline_executions.get_pipeline_execution(db, id=queued.id)
        return e is not None and e.status == ExecutionStatus.SUCCEEDED

    assert await _run_until(db, handler, finished) == 1
    assert seen == [(queued.id, [0, 1])]
    done = await pipeline_executions.get_pipeline_execution(db, id=queued.id)
    assert done is not None
    assert (done.rows_processed, done.claimed_by) == (42, "w")


async def test_failed_executions_are_retried_until_the_limit(db: Database) -> None:
    pipeline = await make_pipeline(db, retry_attempts=2, retry_delay_seconds=0)
    await enqueue_pipeline_execution(db, pipeline.id, triggered_by="api")

    async def handler(execution: PipelineExecution, steps: list[StepExecution]) -> int:
        raise RuntimeError(f"attempt {execution.attempt} broke")

    async def all_failed() -> bool:
        return [s for _, s in await _statuses(db, pipeline.id)] == [ExecutionStatus.FAILED] * 3

    assert await _run_until(db, handler, all_failed) == 3
    rows = await pipeline_executions.list_pipeline_executions(
        db, pipeline_id=pipeline.id, before_queued_at=None, before_id=None, limit=10
    )
    assert sorted((e.attempt, e.error) for e in rows) == [
        (n, f"RuntimeError('attempt {n} broke')") for n in (1, 2, 3)
    ]


async def test_a_failure_while_recording_a_failure_leaves_nothing_half_written(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = await make_plugin(db)
    pipeline = await make_pipeline(db, retry_attempts=1)
    await pipelines.create_pipeline_step(
        db, pipeline_id=pipeline.id, position=0, plugin_id=plugin.id, configuration={}
    )
    await enqueue_pipeline_execution(db, pipeline.id, triggered_by="api")
    [claimed] = await claim_pipeline_executions(db, worker_id="w", limit=1)
    await step_executions.create_step_executions(db, pipeline_execution_id=claimed.id)
    before = await snapshot(db)

    async def broken_requeue(*args: object, **kwargs: object) -> None:
        raise RuntimeError("lost between the statements")

    monkeypatch.setattr(pipeline_executions, "requeue_failed_pipeline_execution", broken_requeue)
    with pytest.raises(RuntimeError):
        await fail_pipeline_execution(db, claimed.id, worker_id="w", error="boom")

    assert await snapshot(db) == before
    monkeypatch.undo()
    failure = await fail_pipeline_execution(db, claimed.id, worker_id="w", error="boom")
    assert failure is not None
    assert failure.retry is not None
    assert failure.retry.attempt == 2
    [step] = await step_executions.list_step_executions(db, pipeline_execution_id=claimed.id)
    assert step.status == ExecutionStatus.CANCELLED
    assert await fail_pipeline_execution(db, claimed.id, worker_id="w", error="again") is None


async def test_a_lost_claim_cancels_the_handler_and_records_nothing(db: Database) -> None:
    pipeline = await make_pipeline(db)
    queued = await enqueue_pipeline_execution(db, pipeline.id, triggered_by="api")
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def handler(execution: PipelineExecution, steps: list[StepExecution]) -> int:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 0

    async def handler_cancelled() -> bool:
        if started.is_set() and not cancelled.is_set():
            await pipeline_executions.cancel_pipeline_execution(db, id=queued.id)
        return cancelled.is_set()

    assert await _run_until(db, handler, handler_cancelled) == 1
    final = await pipeline_executions.get_pipeline_execution(db, id=queued.id)
    assert final is not None
    assert (final.status, final.error) == (ExecutionStatus.CANCELLED, None)


async def test_reaping_fails_stale_executions_and_queues_their_retries(db: Database) -> None:
    pipeline = await make_pipeline(db, retry_attempts=1, max_concurrent_executions=2)
    for _ in range(2):
        await enqueue_pipeline_execution(db, pipeline.id, triggered_by="api")
    stale, alive = await claim_pipeline_executions(db, worker_id="dead", limit=2)
    await db.execute(
        "UPDATE pipeline_executions SET heartbeat_at = now() - interval '1 hour' WHERE id = $1",
        stale.id,
    )
    reaped = await reap_stale_pipeline_executions(
        db, heartbeat_before=datetime.now(UTC) - timedelta(minutes=1)
    )
    assert [(r.failed.id, r.retry is not None) for r in reaped] == [(stale.id, True)]
    assert sorted(s for _, s in await _statuses(db, pipeline.id)) == sorted(
        [ExecutionStatus.FAILED, ExecutionStatus.QUEUED, ExecutionStatus.RUNNING]
    )
    assert alive.status == ExecutionStatus.RUNNING
