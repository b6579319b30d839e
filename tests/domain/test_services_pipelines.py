"""etlstore.services.pipelines: pipelines with steps, versions and audit rows, all or nothing."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import msgspec
import pytest

from etlstore import Database
from etlstore.errors import CheckViolation, Conflict, InvalidReference, NotFound
from etlstore.queries import audit_log, config_versions, pipelines
from etlstore.queries.models import ConfigEntityType, Plugin
from etlstore.services import Actor, InvalidInput
from etlstore.services.pipelines import (
    PipelineSpec,
    StepSpec,
    delete_pipeline,
    restore_pipeline_version,
    save_pipeline,
)

from ._factories import make_plugin, make_user, snapshot

ACTOR = Actor("ada")


def _spec(*plugins: Plugin, **settings: object) -> dict[str, object]:
    """A spec as untrusted input (decoded JSON): ids as text."""
    steps = [{"plugin_id": str(p.id), "configuration": {"n": n}} for n, p in enumerate(plugins)]
    return {"name": "orders", "steps": steps, **settings}


async def _history(db: Database, pipeline_id: UUID) -> list[tuple[str, object]]:
    entries = await audit_log.list_audit_entries_for_entity(
        db, entity_type="pipelines", entity_id=str(pipeline_id), before_at=None, before_id=None,
        limit=10,
    )  # fmt: skip
    return [(e.action, e.after) for e in reversed(entries)]


async def test_creating_writes_the_pipeline_its_steps_version_one_and_an_audit_row(
    db: Database,
) -> None:
    user = await make_user(db)
    tap, target = await make_plugin(db, "tap"), await make_plugin(db, "target")
    actor = Actor("ada", user.id)

    saved = await save_pipeline(db, _spec(tap, target, retry_attempts=2), actor=actor)

    assert saved.version == 1
    assert (saved.pipeline.name, saved.pipeline.retry_attempts) == ("orders", 2)
    assert [(s.position, p.name) for s, p in saved.pipeline.steps] == [(0, "tap"), (1, "target")]
    version = await config_versions.get_latest_config_version(
        db, entity_type=ConfigEntityType.PIPELINE, entity_id=saved.pipeline.id
    )
    assert version is not None
    assert (version.created_by, version.actor) == (user.id, "ada")
    stored = PipelineSpec(
        name="orders",
        retry_attempts=2,
        steps=[StepSpec(tap.id, {"n": 0}), StepSpec(target.id, {"n": 1})],
    )
    assert version.configuration == msgspec.to_builtins(stored)
    [entry] = await audit_log.list_audit_entries_by_actor(
        db, actor_user_id=user.id, before_at=None, before_id=None, limit=5
    )
    assert (entry.action, entry.before) == ("create", None)


async def test_updating_replaces_steps_keeping_ids_by_position(db: Database) -> None:
    tap, target, other = [await make_plugin(db, n) for n in ["tap", "target", "other"]]
    created = await save_pipeline(db, _spec(tap, target, other), actor=ACTOR)
    ids = [s.id for s, _ in created.pipeline.steps]

    updated = await save_pipeline(
        db, _spec(target, name="orders-v2"), actor=ACTOR, pipeline_id=created.pipeline.id
    )

    assert updated.version == 2
    assert updated.pipeline.name == "orders-v2"
    assert [(s.id, p.name) for s, p in updated.pipeline.steps] == [(ids[0], "target")]
    history = await _history(db, created.pipeline.id)
    assert [action for action, _ in history] == ["create", "update"]


async def test_restoring_writes_the_old_configuration_as_a_new_version(db: Database) -> None:
    tap, target = await make_plugin(db, "tap"), await make_plugin(db, "target")
    created = await save_pipeline(db, _spec(tap, max_concurrent_executions=3), actor=ACTOR)
    pipeline_id = created.pipeline.id
    await save_pipeline(db, _spec(target, tap), actor=ACTOR, pipeline_id=pipeline_id)

    restored = await restore_pipeline_version(db, pipeline_id, 1, actor=ACTOR)

    assert restored.version == 3
    assert restored.pipeline.max_concurrent_executions == 3
    assert [p.name for _, p in restored.pipeline.steps] == ["tap"]
    v1, v3 = [
        await config_versions.get_config_version_by_number(
            db, entity_type=ConfigEntityType.PIPELINE, entity_id=pipeline_id, version=n
        )
        for n in (1, 3)
    ]
    assert v1 is not None
    assert v3 is not None
    assert v1.configuration == v3.configuration
    action, after = (await _history(db, pipeline_id))[-1]
    assert action == "restore"
    assert isinstance(after, dict)
    assert after["restored_version"] == 1


async def test_unknown_pipeline_or_version_is_not_found_and_changes_nothing(
    db: Database,
) -> None:
    tap = await make_plugin(db)
    created = await save_pipeline(db, _spec(tap), actor=ACTOR)
    before = await snapshot(db)
    with pytest.raises(NotFound, match="pipeline"):
        await save_pipeline(db, _spec(tap), actor=ACTOR, pipeline_id=uuid4())
    with pytest.raises(NotFound, match="version 7"):
        await restore_pipeline_version(db, created.pipeline.id, 7, actor=ACTOR)
    with pytest.raises(NotFound):
        await delete_pipeline(db, uuid4(), actor=ACTOR)
    assert await snapshot(db) == before


async def test_an_unknown_plugin_in_the_third_step_writes_nothing(db: Database) -> None:
    tap = await make_plugin(db)
    created = await save_pipeline(db, _spec(tap), actor=ACTOR)
    before = await snapshot(db)
    steps = [{"plugin_id": str(tap.id)}, {"plugin_id": str(tap.id)}, {"plugin_id": str(uuid4())}]
    spec = {"name": "orders", "steps": steps}

    with pytest.raises(InvalidReference) as caught:
        await save_pipeline(db, spec, actor=ACTOR, pipeline_id=created.pipeline.id)
    assert caught.value.columns == ("plugin_id",)
    with pytest.raises(InvalidReference):
        await save_pipeline(db, {**spec, "name": "new"}, actor=ACTOR)
    assert await snapshot(db) == before


async def test_a_name_taken_is_a_conflict_naming_the_name_and_writes_nothing(
    db: Database,
) -> None:
    tap = await make_plugin(db)
    await save_pipeline(db, _spec(tap, name="orders"), actor=ACTOR)
    other = await save_pipeline(db, _spec(tap, name="other"), actor=ACTOR)
    before = await snapshot(db)
    with pytest.raises(Conflict) as caught:
        await save_pipeline(db, _spec(tap, name="orders"), actor=ACTOR)
    assert caught.value.columns == ("name",)
    with pytest.raises(Conflict):
        await save_pipeline(db, _spec(name="orders"), actor=ACTOR, pipeline_id=other.pipeline.id)
    assert await snapshot(db) == before


@pytest.mark.parametrize(("settings", "field"), [
    ({"retry_attempts": -1}, "retry_attempts"),
    ({"max_concurrent_executions": 0}, "max_concurrent_executions"),
])  # fmt: skip
async def test_a_limit_out_of_range_is_a_check_violation_naming_it(
    db: Database, settings: dict[str, object], field: str
) -> None:
    tap = await make_plugin(db)
    before = await snapshot(db)
    with pytest.raises(CheckViolation) as caught:
        await save_pipeline(db, _spec(tap, **settings), actor=ACTOR)
    assert caught.value.columns == (field,)
    assert await snapshot(db) == before


@pytest.mark.parametrize(("spec", "field"), [
    ({"name": "p", "retry_attempts": "three"}, "$.retry_attempts"),
    ({"name": "p", "steps": [{"plugin_id": "not-a-uuid"}]}, "$.steps[0].plugin_id"),
    ({"name": "p", "colour": "red"}, "$.colour"),
    ({}, "$"),
])  # fmt: skip
async def test_malformed_input_is_invalid_input_naming_the_field(
    db: Database, spec: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await save_pipeline(db, spec, actor=ACTOR)
    assert caught.value.field == field
    assert await pipelines.list_pipelines(db, after_name=None, limit=5) == []


async def test_restoring_a_version_whose_plugin_was_deleted_writes_nothing(
    db: Database,
) -> None:
    old, new = await make_plugin(db, "old"), await make_plugin(db, "new")
    created = await save_pipeline(db, _spec(old), actor=ACTOR)
    await save_pipeline(db, _spec(new), actor=ACTOR, pipeline_id=created.pipeline.id)
    await db.execute("DELETE FROM plugins WHERE id = $1", old.id)
    before = await snapshot(db)
    with pytest.raises(InvalidReference):
        await restore_pipeline_version(db, created.pipeline.id, 1, actor=ACTOR)
    assert await snapshot(db) == before


async def test_deleting_keeps_the_versions_and_audits_the_deletion(db: Database) -> None:
    tap = await make_plugin(db)
    created = await save_pipeline(db, _spec(tap), actor=ACTOR)
    deleted = await delete_pipeline(db, created.pipeline.id, actor=ACTOR)
    assert deleted.id == created.pipeline.id
    assert await pipelines.get_pipeline(db, id=deleted.id) is None
    assert await config_versions.get_latest_config_version(
        db, entity_type=ConfigEntityType.PIPELINE, entity_id=deleted.id
    ) is not None  # fmt: skip
    assert [a for a, _ in await _history(db, deleted.id)] == ["create", "delete"]


async def test_concurrent_saves_of_one_pipeline_get_distinct_versions(db: Database) -> None:
    tap = await make_plugin(db)
    created = await save_pipeline(db, _spec(tap), actor=ACTOR)
    saves = [
        save_pipeline(
            db, _spec(tap, description=f"save {n}"), actor=ACTOR, pipeline_id=created.pipeline.id
        )
        for n in range(6)
    ]
    versions = sorted(s.version for s in await asyncio.gather(*saves))
    assert versions == [2, 3, 4, 5, 6, 7]
