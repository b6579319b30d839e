"""sql/step_executions.sql: the run of each step within a pipeline execution."""

from __future__ import annotations

import pytest

from etlstore import Database
from etlstore.errors import CheckViolation, Conflict
from etlstore.queries import pipeline_executions, pipelines, step_executions
from etlstore.queries.models import ExecutionStatus, PipelineExecution, TriggerKind

from ._factories import make_pipeline, make_plugin


async def _execution(db: Database, steps: int) -> PipelineExecution:
    plugin = await make_plugin(db)
    pipeline = await make_pipeline(db)
    for position in reversed(range(steps)):
        await pipelines.create_pipeline_step(
            db, pipeline_id=pipeline.id, position=position, plugin_id=plugin.id, configuration={}
        )
    queued = await pipeline_executions.enqueue_pipeline_execution(
        db,
        pipeline_id=pipeline.id,
        triggered_by=TriggerKind.SCHEDULE,
        triggered_by_user_id=None,
        idempotency_key=None,
        context={},
    )
    assert queued is not None
    return queued


async def test_create_step_executions_makes_one_per_step_in_position_order(db: Database) -> None:
    execution = await _execution(db, steps=3)
    steps = await pipelines.list_pipeline_steps(db, pipeline_id=execution.pipeline_id)

    created = await step_executions.create_step_executions(db, pipeline_execution_id=execution.id)

    assert [(s.position, s.step_id, s.status) for s in created] == [
        (s.position, s.id, ExecutionStatus.QUEUED) for s in steps
    ]
    listed = await step_executions.list_step_executions(db, pipeline_execution_id=execution.id)
    assert listed == created


async def test_a_step_runs_then_succeeds_or_fails_once(db: Database) -> None:
    execution = await _execution(db, steps=2)
    first, second = await step_executions.create_step_executions(
        db, pipeline_execution_id=execution.id
    )
    # Not running yet: cannot finish.
    assert await step_executions.mark_step_execution_succeeded(
        db, id=first.id, rows_in=1, rows_out=1
    ) is None  # fmt: skip
    running = await step_executions.mark_step_execution_running(db, id=first.id)
    assert running is not None
    assert running.started_at is not None
    assert await step_executions.mark_step_execution_running(db, id=first.id) is None
    done = await step_executions.mark_step_execution_succeeded(
        db, id=first.id, rows_in=10, rows_out=8
    )
    assert done is not None
    assert (done.status, done.rows_in, done.rows_out) == (ExecutionStatus.SUCCEEDED, 10, 8)
    await step_executions.mark_step_execution_running(db, id=second.id)
    failed = await step_executions.mark_step_execution_failed(
        db, id=second.id, rows_in=3, rows_out=0, error="bad row"
    )
    assert failed is not None
    assert (failed.status, failed.error) == (
        ExecutionStatus.FAILED,
        "bad row",
    )


async def test_cancel_step_executions_cancels_only_unfinished_ones(db: Database) -> None:
    execution = await _execution(db, steps=3)
    first, second, _ = await step_executions.create_step_executions(
        db, pipeline_execution_id=execution.id
    )
    await step_executions.mark_step_execution_running(db, id=first.id)
    await step_executions.mark_step_execution_succeeded(db, id=first.id, rows_in=1, rows_out=1)
    await step_executions.mark_step_execution_running(db, id=second.id)

    assert await step_executions.cancel_step_executions(db, pipeline_execution_id=execution.id) == 2

    statuses = [
        s.status
        for s in await step_executions.list_step_executions(db, pipeline_execution_id=execution.id)
    ]
    assert statuses == [
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.CANCELLED,
        ExecutionStatus.CANCELLED,
    ]


async def test_a_position_used_twice_is_a_conflict_and_negative_rows_a_check(db: Database) -> None:
    execution = await _execution(db, steps=1)
    made = await step_executions.create_step_execution(
        db, pipeline_execution_id=execution.id, step_id=None, position=0
    )
    with pytest.raises(Conflict) as caught:
        await step_executions.create_step_execution(
            db, pipeline_execution_id=execution.id, step_id=None, position=0
        )
    assert caught.value.columns == ("pipeline_execution_id", "position")
    await step_executions.mark_step_execution_running(db, id=made.id)
    with pytest.raises(CheckViolation) as negative:
        await step_executions.mark_step_execution_succeeded(db, id=made.id, rows_in=-1, rows_out=0)
    assert negative.value.columns == ("rows_in",)
    assert await step_executions.get_step_execution(db, id=made.id) is not None
    assert await step_executions.delete_step_execution(db, id=made.id) is not None
    assert await step_executions.get_step_execution(db, id=made.id) is None
