"""The pipeline work queue: enqueue, claim, run a callback, record the outcome, retry.

A worker claims queued executions (marking them running) in one short transaction, runs the
caller's handler outside any transaction while a heartbeat keeps the claim alive, then records
success, or failure plus the retry (a new queued row, attempt + 1) in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from uuid import UUID

import msgspec

from etlstore._database import Database
from etlstore.errors import InvalidReference
from etlstore.queries import pipeline_executions as executions
from etlstore.queries import step_executions
from etlstore.queries.models import PipelineExecution, StepExecution, TriggerKind
from etlstore.services._common import convert, not_found

__all__ = [
    "Failure",
    "Handler",
    "claim_pipeline_executions",
    "enqueue_pipeline_execution",
    "fail_pipeline_execution",
    "reap_stale_pipeline_executions",
    "run_pipeline_worker",
    "succeed_pipeline_execution",
]

#: Runs one claimed execution given its step executions; returns the rows it processed.
Handler = Callable[[PipelineExecution, list[StepExecution]], Awaitable[int]]

_log = logging.getLogger("etlstore.services.worker")


class Failure(msgspec.Struct, frozen=True):
    """A failed execution and its retry (None when the retries are used up)."""

    failed: PipelineExecution
    retry: PipelineExecution | None


async def enqueue_pipeline_execution(
    db: Database,
    pipeline_id: UUID,
    *,
    triggered_by: str,
    triggered_by_user_id: UUID | None = None,
    idempotency_key: str | None = None,
    context: object = None,
) -> PipelineExecution:
    """Queue a run of a pipeline; with an idempotency key, a repeat returns the first run.

    ``triggered_by`` is a TriggerKind value (InvalidInput otherwise); NotFound for an unknown
    pipeline.
    """
    kind = convert(triggered_by, TriggerKind, name="triggered_by")
    try:
        queued = await executions.enqueue_pipeline_execution(
            db,
            pipeline_id=pipeline_id,
            triggered_by=kind,
            triggered_by_user_id=triggered_by_user_id,
            idempotency_key=idempotency_key,
            context={} if context is None else context,
        )
    except InvalidReference as exc:
        if exc.constraint != "pipeline_executions_pipeline_id_fkey":
            raise
        raise not_found("pipeline", pipeline_id) from exc
    if queued is not None:
        return queued
    assert idempotency_key is not None  # only a key can make the insert a no-op
    first = await executions.get_pipeline_execution_by_idempotency_key(
        db, pipeline_id=pipeline_id, idempotency_key=idempotency_key
    )
    if first is None:  # pragma: no cover - deleted between the two statements
        raise not_found(f"execution with key {idempotency_key!r} of pipeline", pipeline_id)
    return first


async def claim_pipeline_executions(
    db: Database, *, worker_id: str, limit: int
) -> list[PipelineExecution]:
    """Mark up to ``limit`` queued executions running for ``worker_id``, oldest first.

    Never two workers the same execution, never more running per pipeline than its
    max_concurrent_executions. Both statements must share one transaction: the pipeline locks
    of the first serialise claimers per pipeline, and the second's fresh snapshot then sees
    every earlier claimer's running rows.
    """
    async with db.transaction() as tx:
        locked = await executions.lock_pipelines_with_queued_executions(tx, limit=limit)
        if not locked:
            return []
        return await executions.claim_pipeline_executions(
            tx, pipeline_ids=[row.id for row in locked], worker_id=worker_id, limit=limit
        )


async def succeed_pipeline_execution(
    db: Database, execution_id: int, *, worker_id: str, rows_processed: int
) -> PipelineExecution | None:
    """Record success; None when ``worker_id`` no longer holds the execution."""
    return await executions.mark_pipeline_execution_succeeded(
        db, id=execution_id, worker_id=worker_id, rows_processed=rows_processed
    )


async def fail_pipeline_execution(
    db: Database, execution_id: int, *, worker_id: str, error: str
) -> Failure | None:
    """Record failure, cancel its unfinished steps and queue its retry, all or nothing.

    None when ``worker_id`` no longer holds the execution.
    """
    async with db.transaction() as tx:
        failed = await executions.mark_pipeline_execution_failed(
            tx, id=execution_id, worker_id=worker_id, error=error
        )
        if failed is None:
            return None
        await step_executions.cancel_step_executions(tx, pipeline_execution_id=execution_id)
        retry = await executions.requeue_failed_pipeline_execution(tx, id=execution_id)
        return Failure(failed, retry)


async def reap_stale_pipeline_executions(
    db: Database, *, heartbeat_before: datetime
) -> list[Failure]:
    """Fail the executions whose worker died (no heartbeat since then) and queue their retries."""
    async with db.transaction() as tx:
        stale = await executions.fail_stale_pipeline_executions(
            tx, heartbeat_before=heartbeat_before
        )
        reaped = []
        for failed in stale:
            await step_executions.cancel_step_executions(tx, pipeline_execution_id=failed.id)
            retry = await executions.requeue_failed_pipeline_execution(tx, id=failed.id)
            reaped.append(Failure(failed, retry))
        return reaped


async def run_pipeline_worker(
    db: Database,
    *,
    worker_id: str,
    handler: Handler,
    stop: asyncio.Event,
    batch: int = 1,
    idle_sleep: float = 0.5,
    heartbeat_every: float = 10.0,
) -> int:
    """Claim and run executions until ``stop`` is set; returns how many this worker ran.

    A handler that raises fails its execution (with ``repr`` of the exception as the error)
    and queues a retry within the pipeline's retry_attempts. If the heartbeat finds the claim
    lost (cancelled, or reaped as stale) the handler is cancelled and nothing is recorded.
    When there is nothing to claim the worker sleeps about ``idle_sleep`` seconds (jittered,
    so idle workers do not poll in step). With ``batch`` > 1 the executions of a batch run one
    after the other, the later ones waiting claimed: keep ``batch`` small next to the stale
    timeout given to reap_stale_pipeline_executions. Database errors propagate and end the loop;
    what this worker held is then failed and retried by the reaper.
    """
    ran = 0
    while not stop.is_set():
        claimed = await claim_pipeline_executions(db, worker_id=worker_id, limit=batch)
        if not claimed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), idle_sleep * random.uniform(0.5, 1.5))
            continue
        for execution in claimed:
            await _run_one(db, execution, worker_id, handler, heartbeat_every)
            ran += 1
    return ran


async def _run_one(
    db: Database,
    execution: PipelineExecution,
    worker_id: str,
    handler: Handler,
    heartbeat_every: float,
) -> None:
    steps = await step_executions.create_step_executions(db, pipeline_execution_id=execution.id)
    work = asyncio.ensure_future(handler(execution, steps))
    beat = asyncio.ensure_future(_heartbeat(db, execution, worker_id, heartbeat_every, work))
    try:
        rows = await work
    except asyncio.CancelledError:
        claim_lost = beat.done() and not beat.cancelled() and beat.exception() is None
        if not claim_lost:
            raise  # this worker was cancelled, not the handler by the heartbeat
        _log.warning("execution %d: claim lost, handler cancelled", execution.id)
        return
    except Exception as exc:
        _log.info("execution %d failed: %r", execution.id, exc)
        await fail_pipeline_execution(db, execution.id, worker_id=worker_id, error=repr(exc))
        return
    finally:
        await _stop(beat)
    await succeed_pipeline_execution(db, execution.id, worker_id=worker_id, rows_processed=rows)


async def _stop(beat: asyncio.Future[None]) -> None:
    beat.cancel()
    try:
        await beat
    except asyncio.CancelledError:
        pass
    except Exception:  # a failed heartbeat must not hide the handler's outcome
        _log.exception("heartbeat failed")


async def _heartbeat(
    db: Database,
    execution: PipelineExecution,
    worker_id: str,
    every: float,
    work: asyncio.Future[int],
) -> None:
    """Keep the claim alive; cancel ``work`` when the claim turns out to be lost."""
    while True:
        await asyncio.sleep(every)
        held = await executions.record_pipeline_execution_heartbeat(
            db, id=execution.id, worker_id=worker_id, rows_processed=execution.rows_processed
        )
        if not held:
            work.cancel()
            return
