"""sql/pipelines.sql: pipelines and their ordered steps, eager and lazy."""

from __future__ import annotations

from uuid import uuid4

import pytest

from etlstore import Database
from etlstore.errors import CheckViolation, Conflict, InvalidReference
from etlstore.queries import pipelines
from etlstore.queries.models import Pipeline, PluginType
from etlstore.queries.pipelines import ListPipelineStepsByPluginRow, UpsertPipelineStepsParams

from ._factories import make_pipeline, make_plugin, snapshot, walk_pages


async def test_get_pipeline_by_id_and_name(db: Database) -> None:
    created = await make_pipeline(db, "orders")
    assert await pipelines.get_pipeline(db, id=created.id) == created
    assert await pipelines.get_pipeline_by_name(db, name="orders") == created
    assert await pipelines.get_pipeline(db, id=uuid4()) is None
    assert await pipelines.get_pipeline_by_name(db, name="Orders") is None


async def test_with_steps_returns_steps_by_position_each_with_its_plugin(db: Database) -> None:
    tap = await make_plugin(db, "tap-s3")
    target = await make_plugin(db, "target-pg", plugin_type=PluginType.LOADER)
    pipeline = await make_pipeline(db)
    # Written out of order: the result is sorted by position, not by insertion.
    for position, plugin in [(2, target), (0, tap), (1, tap)]:
        await pipelines.create_pipeline_step(
            db,
            pipeline_id=pipeline.id,
            position=position,
            plugin_id=plugin.id,
            configuration={"p": position},
        )

    loaded = await pipelines.get_pipeline_with_steps(db, id=pipeline.id)

    assert loaded is not None
    assert loaded.name == pipeline.name
    assert [(s.position, s.configuration, p.name) for s, p in loaded.steps] == [
        (0, {"p": 0}, "tap-s3"),
        (1, {"p": 1}, "tap-s3"),
        (2, {"p": 2}, "target-pg"),
    ]
    assert all(s.plugin_id == p.id for s, p in loaded.steps)
    assert [s for s, _ in loaded.steps] == await pipelines.list_pipeline_steps(
        db, pipeline_id=pipeline.id
    )


async def test_with_steps_of_a_pipeline_without_steps_is_an_empty_list(db: Database) -> None:
    pipeline = await make_pipeline(db)
    loaded = await pipelines.get_pipeline_with_steps(db, id=pipeline.id)
    assert loaded is not None
    assert loaded.steps == []
    assert await pipelines.get_pipeline_with_steps(db, id=uuid4()) is None


@pytest.mark.parametrize(("column", "value"), [
    ("max_concurrent_executions", 0),
    ("retry_attempts", -1),
    ("retry_delay_seconds", -1),
])  # fmt: skip
async def test_limits_out_of_range_are_check_violations_naming_the_column(
    db: Database, column: str, value: int
) -> None:
    settings = {"max_concurrent_executions": 1, "retry_attempts": 0, "retry_delay_seconds": 0}
    settings[column] = value
    with pytest.raises(CheckViolation) as caught:
        await make_pipeline(
            db,
            max_concurrent_executions=settings["max_concurrent_executions"],
            retry_attempts=settings["retry_attempts"],
            retry_delay_seconds=settings["retry_delay_seconds"],
        )
    assert caught.value.constraint == f"pipelines_{column}_check"
    assert caught.value.columns == (column,)
    assert await pipelines.list_pipelines(db, after_name=None, limit=10) == []


async def test_a_name_taken_is_a_conflict_naming_the_name(db: Database) -> None:
    await make_pipeline(db, "orders")
    with pytest.raises(Conflict) as caught:
        await make_pipeline(db, "orders")
    assert caught.value.constraint == "pipelines_name_key"
    assert caught.value.columns == ("name",)


async def test_a_step_position_clash_is_a_conflict_and_changes_nothing(db: Database) -> None:
    plugin = await make_plugin(db)
    pipeline = await make_pipeline(db)
    first = await pipelines.create_pipeline_step(
        db, pipeline_id=pipeline.id, position=0, plugin_id=plugin.id, configuration={}
    )
    second = await pipelines.create_pipeline_step(
        db, pipeline_id=pipeline.id, position=1, plugin_id=plugin.id, configuration={}
    )
    before = await snapshot(db)

    with pytest.raises(Conflict) as caught:
        await pipelines.create_pipeline_step(
            db, pipeline_id=pipeline.id, position=0, plugin_id=plugin.id, configuration={}
        )
    assert caught.value.columns == ("pipeline_id", "position")
    with pytest.raises(Conflict):
        await pipelines.update_pipeline_step(
            db, id=second.id, position=first.position, plugin_id=plugin.id, configuration={}
        )
    assert await snapshot(db) == before


async def test_a_step_with_an_unknown_plugin_is_an_invalid_reference(db: Database) -> None:
    pipeline = await make_pipeline(db)
    with pytest.raises(InvalidReference) as caught:
        await pipelines.create_pipeline_step(
            db, pipeline_id=pipeline.id, position=0, plugin_id=uuid4(), configuration={}
        )
    assert caught.value.columns == ("plugin_id",)


async def test_upsert_keeps_step_ids_by_position_and_delete_after_trims(db: Database) -> None:
    tap = await make_plugin(db, "tap-s3")
    other = await make_plugin(db, "tap-gcs")
    pipeline = await make_pipeline(db)
    await pipelines.upsert_pipeline_steps(
        db, params=[UpsertPipelineStepsParams(pipeline.id, i, tap.id, {}) for i in range(3)]
    )
    old = await pipelines.list_pipeline_steps(db, pipeline_id=pipeline.id)

    await pipelines.upsert_pipeline_steps(
        db, params=[UpsertPipelineStepsParams(pipeline.id, 0, other.id, {"v": 2})]
    )
    assert (
        await pipelines.delete_pipeline_steps_after(db, pipeline_id=pipeline.id, last_position=0)
        == 2
    )

    new = await pipelines.list_pipeline_steps(db, pipeline_id=pipeline.id)
    assert [(s.id, s.plugin_id, s.configuration) for s in new] == [(old[0].id, other.id, {"v": 2})]


@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_list_pipelines_walks_every_pipeline_once_by_name(db: Database, limit: int) -> None:
    for name in ["b", "c", "a"]:
        await make_pipeline(db, name)

    async def page(last: Pipeline | None) -> list[Pipeline]:
        after = None if last is None else last.name
        return await pipelines.list_pipelines(db, after_name=after, limit=limit)

    assert [p.name for page_ in await walk_pages(page, limit) for p in page_] == ["a", "b", "c"]


async def test_list_scheduled_pipelines_skips_paused_and_unscheduled_ones(db: Database) -> None:
    await make_pipeline(db, "b", schedule_expression="0 * * * *")
    await make_pipeline(db, "a", schedule_expression="*/5 * * * *")
    await make_pipeline(db, "paused", schedule_expression="0 * * * *", is_paused=True)
    await make_pipeline(db, "manual")
    first = await pipelines.list_scheduled_pipelines(db, after_name=None, limit=1)
    rest = await pipelines.list_scheduled_pipelines(db, after_name=first[-1].name, limit=5)
    assert [(p.name, p.schedule_expression) for p in first + rest] == [
        ("a", "*/5 * * * *"),
        ("b", "0 * * * *"),
    ]


async def test_set_paused_and_delete_return_none_for_an_unknown_pipeline(db: Database) -> None:
    pipeline = await make_pipeline(db)
    paused = await pipelines.set_pipeline_paused(db, id=pipeline.id, is_paused=True)
    assert paused is not None
    assert paused.is_paused
    assert await pipelines.set_pipeline_paused(db, id=uuid4(), is_paused=True) is None
    assert await pipelines.delete_pipeline(db, id=uuid4()) is None


async def test_deleting_a_pipeline_takes_its_steps(db: Database) -> None:
    plugin = await make_plugin(db)
    pipeline = await make_pipeline(db)
    step = await pipelines.create_pipeline_step(
        db, pipeline_id=pipeline.id, position=0, plugin_id=plugin.id, configuration={}
    )
    assert await pipelines.delete_pipeline(db, id=pipeline.id) is not None
    assert await pipelines.get_pipeline_step(db, id=step.id) is None


@pytest.mark.parametrize("limit", [1, 2, 4])
async def test_steps_by_plugin_page_in_step_id_order(db: Database, limit: int) -> None:
    plugin = await make_plugin(db)
    for name in ["a", "b"]:
        pipeline = await make_pipeline(db, name)
        for position in range(2):
            await pipelines.create_pipeline_step(
                db,
                pipeline_id=pipeline.id,
                position=position,
                plugin_id=plugin.id,
                configuration={},
            )

    async def page(last: ListPipelineStepsByPluginRow | None) -> list[ListPipelineStepsByPluginRow]:
        after = None if last is None else last.id
        return await pipelines.list_pipeline_steps_by_plugin(
            db, plugin_id=plugin.id, after_id=after, limit=limit
        )

    walked = [s.id for p in await walk_pages(page, limit) for s in p]
    assert walked == sorted(walked)
    assert len(walked) == 4


async def test_update_and_delete_one_step(db: Database) -> None:
    plugin = await make_plugin(db)
    other = await make_plugin(db, "other")
    pipeline = await make_pipeline(db)
    step = await pipelines.create_pipeline_step(
        db, pipeline_id=pipeline.id, position=0, plugin_id=plugin.id, configuration={}
    )
    moved = await pipelines.update_pipeline_step(
        db, id=step.id, position=5, plugin_id=other.id, configuration={"a": 1}
    )
    assert moved is not None
    assert (moved.position, moved.plugin_id, moved.configuration) == (5, other.id, {"a": 1})
    assert await pipelines.delete_pipeline_step(db, id=step.id) == moved
    assert await pipelines.delete_pipeline_step(db, id=step.id) is None
    assert (
        await pipelines.update_pipeline_step(
            db, id=step.id, position=0, plugin_id=plugin.id, configuration={}
        )
        is None
    )
