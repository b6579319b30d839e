"""sql/job_executions.sql: the job work queue (no concurrency limit per job)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from etlstore import Database
from etlstore.queries import job_executions as executions
from etlstore.queries.models import ExecutionStatus, JobExecution, TriggerKind

from ._factories import make_job, walk_pages


async def _enqueue(db: Database, job_id: UUID, key: str | None = None) -> JobExecution | None:
    return await executions.enqueue_job_execution(
        db,
        job_id=job_id,
        triggered_by=TriggerKind.USER,
        triggered_by_user_id=None,
        idempotency_key=key,
        context={},
    )


async def test_an_idempotency_key_queues_a_job_once(db: Database) -> None:
    job = await make_job(db)
    first = await _enqueue(db, job.id, "k")
    assert first is not None
    assert await _enqueue(db, job.id, "k") is None
    found = await executions.get_job_execution_by_idempotency_key(
        db, job_id=job.id, idempotency_key="k"
    )
    assert found == first
    assert await executions.get_job_execution(db, id=first.id) == first


async def test_claim_finish_and_requeue_up_to_num_of_retries(db: Database) -> None:
    job = await make_job(db, num_of_retries=1)
    await _enqueue(db, job.id)
    [claimed] = await executions.claim_job_executions(db, worker_id="w", limit=5)
    assert (claimed.status, claimed.claimed_by) == (ExecutionStatus.RUNNING, "w")
    assert await executions.record_job_execution_heartbeat(
        db, id=claimed.id, worker_id="w", rows_processed=3
    ) == 1  # fmt: skip
    failed = await executions.mark_job_execution_failed(db, id=claimed.id, worker_id="w", error="x")
    assert failed is not None
    retry = await executions.requeue_failed_job_execution(db, id=failed.id)
    assert retry is not None
    assert retry.attempt == 2
    [again] = await executions.claim_job_executions(db, worker_id="w", limit=5)
    await executions.mark_job_execution_failed(db, id=again.id, worker_id="w", error="x")
    assert await executions.requeue_failed_job_execution(db, id=again.id) is None
    assert await executions.mark_job_execution_succeeded(
        db, id=again.id, worker_id="w", rows_processed=1
    ) is None  # fmt: skip


async def test_cancel_fail_stale_and_running_list(db: Database) -> None:
    job = await make_job(db)
    for _ in range(3):
        await _enqueue(db, job.id)
    first, second = await executions.claim_job_executions(db, worker_id="w", limit=2)
    assert [e.id for e in await executions.list_running_job_executions(db, limit=5)] == [
        first.id,
        second.id,
    ]
    cancelled = await executions.cancel_job_execution(db, id=first.id)
    assert cancelled is not None
    assert cancelled.status == ExecutionStatus.CANCELLED
    await db.execute(
        "UPDATE job_executions SET heartbeat_at = now() - interval '1 hour' WHERE id = $1",
        second.id,
    )
    stale = await executions.fail_stale_job_executions(
        db, heartbeat_before=datetime.now(UTC) - timedelta(minutes=1)
    )
    assert [e.id for e in stale] == [second.id]
    now = datetime.now(UTC)
    counts = await executions.count_job_executions_by_status(
        db, since=now - timedelta(hours=1), until=now + timedelta(seconds=1)
    )
    assert {(c.status, c.count) for c in counts} == {
        (ExecutionStatus.QUEUED, 1),
        (ExecutionStatus.CANCELLED, 1),
        (ExecutionStatus.FAILED, 1),
    }
    rates = await executions.list_job_failure_rates(db, since=now - timedelta(days=1))
    assert [(r.name, r.finished, r.failed, r.failure_rate) for r in rates] == [
        (job.name, 1, 1, 1.0)
    ]


@pytest.mark.parametrize("limit", [1, 3, 4])
async def test_list_job_executions_walks_newest_first(db: Database, limit: int) -> None:
    job = await make_job(db)
    made = [await _enqueue(db, job.id) for _ in range(3)]

    async def page(last: JobExecution | None) -> list[JobExecution]:
        return await executions.list_job_executions(
            db,
            job_id=job.id,
            before_queued_at=None if last is None else last.queued_at,
            before_id=None if last is None else last.id,
            limit=limit,
        )

    walked = [e.id for p in await walk_pages(page, limit) for e in p]
    assert walked == [e.id for e in reversed(made) if e is not None]


async def test_four_job_workers_never_claim_the_same_execution(db: Database) -> None:
    job = await make_job(db)
    await db.execute(
        "INSERT INTO job_executions (job_id, triggered_by)"
        " SELECT $1, 'api' FROM generate_series(1, 400)",
        job.id,
    )
    claimed: list[int] = []

    async def worker(name: str) -> None:
        while batch := await executions.claim_job_executions(db, worker_id=name, limit=7):
            claimed.extend(e.id for e in batch)
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(f"w{n}") for n in range(4)))

    assert len(claimed) == 400
    assert len(set(claimed)) == 400
    assert await executions.delete_job_execution(db, id=claimed[0]) is not None
