"""sql/pipeline_executions.sql: the pipeline work queue and its reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import msgspec
import pytest

from etlstore import Database
from etlstore.errors import CheckViolation, InvalidReference
from etlstore.queries import pipeline_executions as executions
from etlstore.queries.models import ExecutionStatus, PipelineExecution, TriggerKind
from etlstore.queries.pipeline_executions import CopyPipelineExecutionsRecord

from ._factories import make_pipeline, walk_pages

API = TriggerKind.API


async def _enqueue(db: Database, pipeline_id: UUID, key: str | None = None) -> PipelineExecution:
    queued = await executions.enqueue_pipeline_execution(
        db,
        pipeline_id=pipeline_id,
        triggered_by=API,
        triggered_by_user_id=None,
        idempotency_key=key,
        context={"k": key},
    )
    assert queued is not None
    return queued


async def _claim(db: Database, worker: str, limit: int = 10) -> list[PipelineExecution]:
    async with db.transaction() as tx:
        locked = await executions.lock_pipelines_with_queued_executions(tx, limit=limit)
        return await executions.claim_pipeline_executions(
            tx, pipeline_ids=[p.id for p in locked], worker_id=worker, limit=limit
        )


async def test_an_idempotency_key_queues_once_then_finds_the_first(db: Database) -> None:
    pipeline = await make_pipeline(db)
    first = await _enqueue(db, pipeline.id, "run-1")
    again = await executions.enqueue_pipeline_execution(
        db,
        pipeline_id=pipeline.id,
        triggered_by=API,
        triggered_by_user_id=None,
        idempotency_key="run-1",
        context={},
    )
    assert again is None
    found = await executions.get_pipeline_execution_by_idempotency_key(
        db, pipeline_id=pipeline.id, idempotency_key="run-1"
    )
    assert found == first
    assert (first.status, first.attempt, first.context) == (
        ExecutionStatus.QUEUED,
        1,
        {"k": "run-1"},
    )


async def test_enqueueing_for_an_unknown_pipeline_is_an_invalid_reference(db: Database) -> None:
    with pytest.raises(InvalidReference) as caught:
        await _enqueue(db, uuid4())
    assert caught.value.columns == ("pipeline_id",)


async def test_claiming_marks_the_oldest_running_for_the_worker(db: Database) -> None:
    pipeline = await make_pipeline(db, max_concurrent_executions=5)
    queued = [await _enqueue(db, pipeline.id) for _ in range(3)]

    claimed = await _claim(db, "w1", limit=2)

    assert [c.id for c in claimed] == [q.id for q in queued[:2]]
    for c in claimed:
        assert (c.status, c.claimed_by) == (ExecutionStatus.RUNNING, "w1")
        assert c.started_at is not None
        assert c.claimed_at is not None
        assert c.heartbeat_at is not None
    assert await executions.count_running_pipeline_executions(db, pipeline_id=pipeline.id) == 2


async def test_claiming_honours_max_concurrent_executions(db: Database) -> None:
    pipeline = await make_pipeline(db, max_concurrent_executions=2)
    for _ in range(5):
        await _enqueue(db, pipeline.id)
    assert len(await _claim(db, "w1", limit=10)) == 2
    assert await _claim(db, "w2", limit=10) == []


async def test_lock_returns_each_waiting_pipeline_once_oldest_first_skipping_full_ones(
    db: Database,
) -> None:
    full = await make_pipeline(db, "full", max_concurrent_executions=1)
    busy = await make_pipeline(db, "busy", max_concurrent_executions=5)
    idle = await make_pipeline(db, "idle", max_concurrent_executions=5)
    # The full pipeline's backlog is the oldest: the walk must go past it.
    for _ in range(3):
        await _enqueue(db, full.id)
    assert [e.pipeline_id for e in await _claim(db, "w1", limit=1)] == [full.id]
    await _enqueue(db, busy.id)
    await _enqueue(db, idle.id)
    await _enqueue(db, busy.id)

    async with db.transaction() as tx:
        locked = await executions.lock_pipelines_with_queued_executions(tx, limit=10)
    async with db.transaction() as tx:
        first = await executions.lock_pipelines_with_queued_executions(tx, limit=1)

    assert [p.id for p in locked] == [busy.id, idle.id]
    assert [p.id for p in first] == [busy.id]


async def test_lock_skips_pipelines_another_claimer_holds(db: Database) -> None:
    held = await make_pipeline(db, "held")
    free = await make_pipeline(db, "free")
    await _enqueue(db, held.id)
    await _enqueue(db, free.id)
    async with db.transaction() as first:
        [taken] = await executions.lock_pipelines_with_queued_executions(first, limit=1)
        async with db.transaction() as second:
            others = await executions.lock_pipelines_with_queued_executions(second, limit=10)
            claimed = await executions.claim_pipeline_executions(
                second, pipeline_ids=[p.id for p in others], worker_id="w2", limit=10
            )
    assert taken.id == held.id
    assert [p.id for p in others] == [free.id]
    assert [(c.pipeline_id, c.claimed_by) for c in claimed] == [(free.id, "w2")]


async def test_a_paused_pipeline_is_still_claimed_but_nothing_queued_is_not(db: Database) -> None:
    pipeline = await make_pipeline(db, is_paused=True)
    assert await _claim(db, "w1") == []
    await _enqueue(db, pipeline.id)
    assert len(await _claim(db, "w1")) == 1


async def test_only_the_claiming_worker_can_finish_an_execution(db: Database) -> None:
    pipeline = await make_pipeline(db)
    await _enqueue(db, pipeline.id)
    [claimed] = await _claim(db, "w1")
    assert (
        await executions.mark_pipeline_execution_succeeded(
            db, id=claimed.id, worker_id="w2", rows_processed=5
        )
        is None
    )
    assert await executions.mark_pipeline_execution_failed(
        db, id=claimed.id, worker_id="w2", error="x"
    ) is None  # fmt: skip
    done = await executions.mark_pipeline_execution_succeeded(
        db, id=claimed.id, worker_id="w1", rows_processed=5
    )
    assert done is not None
    assert (done.status, done.rows_processed) == (ExecutionStatus.SUCCEEDED, 5)
    assert done.finished_at is not None
    # Finished: marking it again does nothing.
    assert await executions.mark_pipeline_execution_succeeded(
        db, id=claimed.id, worker_id="w1", rows_processed=6
    ) is None  # fmt: skip


async def test_requeue_adds_the_next_attempt_until_the_retry_limit(db: Database) -> None:
    pipeline = await make_pipeline(db, retry_attempts=2, retry_delay_seconds=0)
    current = await _enqueue(db, pipeline.id)
    attempts = []
    while True:
        [claimed] = await _claim(db, "w1")
        assert claimed.id == current.id
        failed = await executions.mark_pipeline_execution_failed(
            db, id=claimed.id, worker_id="w1", error="boom"
        )
        assert failed is not None
        assert failed.error == "boom"
        attempts.append(failed.attempt)
        retry = await executions.requeue_failed_pipeline_execution(db, id=failed.id)
        if retry is None:
            break
        assert (retry.attempt, retry.idempotency_key) == (failed.attempt + 1, f"retry:{failed.id}")
        assert retry.context == current.context
        # Requeueing the same failure twice is a no-op.
        assert await executions.requeue_failed_pipeline_execution(db, id=failed.id) is None
        current = retry
    assert attempts == [1, 2, 3]


async def test_a_retry_is_not_claimable_before_the_retry_delay(db: Database) -> None:
    pipeline = await make_pipeline(db, retry_attempts=1, retry_delay_seconds=3600)
    await _enqueue(db, pipeline.id)
    [claimed] = await _claim(db, "w1")
    await executions.mark_pipeline_execution_failed(db, id=claimed.id, worker_id="w1", error="x")
    retry = await executions.requeue_failed_pipeline_execution(db, id=claimed.id)
    assert retry is not None
    assert retry.queued_at >= claimed.queued_at + timedelta(seconds=3600)
    assert await _claim(db, "w1") == []


async def test_only_failed_executions_are_requeued(db: Database) -> None:
    pipeline = await make_pipeline(db, retry_attempts=3)
    queued = await _enqueue(db, pipeline.id)
    assert await executions.requeue_failed_pipeline_execution(db, id=queued.id) is None


async def test_cancel_stops_the_heartbeat_of_a_running_execution(db: Database) -> None:
    pipeline = await make_pipeline(db)
    await _enqueue(db, pipeline.id)
    [claimed] = await _claim(db, "w1")
    beat = await executions.record_pipeline_execution_heartbeat(
        db, id=claimed.id, worker_id="w1", rows_processed=10
    )
    assert beat == 1
    cancelled = await executions.cancel_pipeline_execution(db, id=claimed.id)
    assert cancelled is not None
    assert cancelled.status == ExecutionStatus.CANCELLED
    assert cancelled.rows_processed == 10
    assert await executions.record_pipeline_execution_heartbeat(
        db, id=claimed.id, worker_id="w1", rows_processed=11
    ) == 0  # fmt: skip
    assert await executions.cancel_pipeline_execution(db, id=claimed.id) is None


async def test_fail_stale_fails_only_executions_without_a_recent_heartbeat(db: Database) -> None:
    pipeline = await make_pipeline(db, max_concurrent_executions=2)
    await _enqueue(db, pipeline.id)
    await _enqueue(db, pipeline.id)
    stale, alive = await _claim(db, "w1")
    await db.execute(
        "UPDATE pipeline_executions SET heartbeat_at = now() - interval '1 hour' WHERE id = $1",
        stale.id,
    )
    failed = await executions.fail_stale_pipeline_executions(
        db, heartbeat_before=datetime.now(UTC) - timedelta(minutes=5)
    )
    assert [(f.id, f.status, f.error) for f in failed] == [
        (stale.id, ExecutionStatus.FAILED, "worker lost: no heartbeat")
    ]
    still = await executions.get_pipeline_execution(db, id=alive.id)
    assert still is not None
    assert still.status == ExecutionStatus.RUNNING


@pytest.mark.parametrize("limit", [1, 2, 5, 6])
async def test_list_executions_walks_newest_first_with_ties_on_time(
    db: Database, limit: int
) -> None:
    pipeline = await make_pipeline(db)
    other = await make_pipeline(db, "other")
    await _enqueue(db, other.id)
    async with db.transaction() as tx:  # one transaction: equal queued_at, ordered by id
        for _ in range(3):
            await executions.enqueue_pipeline_execution(
                tx,
                pipeline_id=pipeline.id,
                triggered_by=API,
                triggered_by_user_id=None,
                idempotency_key=None,
                context={},
            )
    later = [await _enqueue(db, pipeline.id) for _ in range(2)]

    async def page(last: PipelineExecution | None) -> list[PipelineExecution]:
        return await executions.list_pipeline_executions(
            db,
            pipeline_id=pipeline.id,
            before_queued_at=None if last is None else last.queued_at,
            before_id=None if last is None else last.id,
            limit=limit,
        )

    walked = [e for p in await walk_pages(page, limit) for e in p]
    assert len(walked) == 5
    assert [e.id for e in walked[:2]] == [later[1].id, later[0].id]
    assert [(e.queued_at, e.id) for e in walked] == sorted(
        ((e.queued_at, e.id) for e in walked), reverse=True
    )


async def test_running_list_counts_by_status_and_failure_rates(db: Database) -> None:
    good = await make_pipeline(db, "good", max_concurrent_executions=10)
    bad = await make_pipeline(db, "bad", max_concurrent_executions=10)
    for pipeline, outcomes in [(good, "ssf"), (bad, "ffsc")]:
        for outcome in outcomes:
            execution = await _enqueue(db, pipeline.id)
            if outcome == "c":
                await executions.cancel_pipeline_execution(db, id=execution.id)
                continue
            [claimed] = await _claim(db, "w", limit=1)
            if outcome == "s":
                await executions.mark_pipeline_execution_succeeded(
                    db, id=claimed.id, worker_id="w", rows_processed=1
                )
            else:
                await executions.mark_pipeline_execution_failed(
                    db, id=claimed.id, worker_id="w", error="x"
                )
    await _enqueue(db, good.id)
    [running] = await _claim(db, "w", limit=1)
    await _enqueue(db, good.id)
    now = datetime.now(UTC)

    assert [e.id for e in await executions.list_running_pipeline_executions(db, limit=10)] == [
        running.id
    ]
    counts = await executions.count_pipeline_executions_by_status(
        db, since=now - timedelta(hours=1), until=now + timedelta(seconds=1)
    )
    assert {(c.status, c.count) for c in counts} == {
        (ExecutionStatus.QUEUED, 1),
        (ExecutionStatus.RUNNING, 1),
        (ExecutionStatus.SUCCEEDED, 3),
        (ExecutionStatus.FAILED, 3),
        (ExecutionStatus.CANCELLED, 1),
    }
    # The window is half-open and excludes what was queued outside it.
    assert await executions.count_pipeline_executions_by_status(
        db, since=now + timedelta(seconds=1), until=now + timedelta(hours=1)
    ) == []  # fmt: skip
    rates = await executions.list_pipeline_failure_rates(db, since=now - timedelta(days=1))
    assert [(r.name, r.finished, r.failed) for r in rates] == [("bad", 3, 2), ("good", 3, 1)]
    assert [r.failure_rate for r in rates] == pytest.approx([2 / 3, 1 / 3])
    assert await executions.list_pipeline_failure_rates(db, since=now + timedelta(hours=1)) == []


async def test_copy_inserts_every_record_with_defaults_for_the_rest(db: Database) -> None:
    pipelines = [await make_pipeline(db, "a"), await make_pipeline(db, "b")]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = [
        CopyPipelineExecutionsRecord(
            pipeline_id=pipelines[n % 2].id,
            status=ExecutionStatus.FAILED if n % 3 == 0 else ExecutionStatus.SUCCEEDED,
            triggered_by=TriggerKind.SCHEDULE,
            queued_at=start + timedelta(minutes=n),
            started_at=start + timedelta(minutes=n, seconds=1),
            finished_at=start + timedelta(minutes=n, seconds=30),
            rows_processed=n,
            error="boom" if n % 3 == 0 else None,
        )
        for n in range(2_000)
    ]
    records.append(
        CopyPipelineExecutionsRecord(
            pipelines[0].id, ExecutionStatus.QUEUED, TriggerKind.API, start, None, None, 0, None
        )
    )

    assert await executions.copy_pipeline_executions(db, records=records) == 2_001

    rows = await db.fetch(
        "SELECT pipeline_id, status::text, triggered_by::text, queued_at, started_at,"
        " finished_at, rows_processed, error, attempt, idempotency_key, context"
        " FROM pipeline_executions ORDER BY id"
    )
    assert [tuple(r)[:8] for r in rows] == [
        (r.pipeline_id, r.status.value, r.triggered_by.value, r.queued_at, r.started_at,
         r.finished_at, r.rows_processed, r.error)
        for r in records
    ]  # fmt: skip
    assert {(r["attempt"], r["idempotency_key"], r["context"]) for r in rows} == {(1, None, "{}")}
    # The copied queued row is claimable like any other.
    [claimed] = await _claim(db, "w1")
    assert (claimed.pipeline_id, claimed.queued_at) == (pipelines[0].id, start)


async def test_copy_fails_the_whole_batch_on_one_bad_row(db: Database) -> None:
    pipeline = await make_pipeline(db)
    now = datetime.now(UTC)
    good = CopyPipelineExecutionsRecord(
        pipeline.id, ExecutionStatus.SUCCEEDED, TriggerKind.API, now, now, now, 1, None
    )
    unknown = msgspec.structs.replace(good, pipeline_id=uuid4())
    unfinished = msgspec.structs.replace(good, finished_at=None)

    with pytest.raises(InvalidReference) as caught:
        await executions.copy_pipeline_executions(db, records=[good, unknown])
    assert caught.value.columns == ("pipeline_id",)
    with pytest.raises(CheckViolation) as violated:
        await executions.copy_pipeline_executions(db, records=[good, unfinished])
    assert violated.value.constraint == "pipeline_executions_finished_when_final_check"
    assert await db.fetchval("SELECT count(*) FROM pipeline_executions") == 0


async def test_delete_execution_returns_it_once(db: Database) -> None:
    pipeline = await make_pipeline(db)
    queued = await _enqueue(db, pipeline.id)
    assert await executions.delete_pipeline_execution(db, id=queued.id) == queued
    assert await executions.delete_pipeline_execution(db, id=queued.id) is None
    assert await executions.get_pipeline_execution(db, id=queued.id) is None
