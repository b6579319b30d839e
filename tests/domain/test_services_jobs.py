"""etlstore.services.jobs: jobs with components, edges and tags, versioned, all or nothing."""

from __future__ import annotations

from uuid import uuid4

import pytest

from etlstore import Database
from etlstore.errors import CheckViolation, Conflict, InvalidReference, NotFound
from etlstore.queries import audit_log, jobs
from etlstore.services import Actor, DependencyCycle, InvalidInput
from etlstore.services.jobs import (
    DependencySpec,
    SavedJob,
    add_dependency,
    delete_job,
    restore_job_version,
    save_job,
)

from ._factories import snapshot

ACTOR = Actor("ada")


def _spec(edges: str = "", name: str = "nightly", **settings: object) -> dict[str, object]:
    """extract -> clean -> load, plus edges written as "a<b" (a runs after b)."""
    components = [
        {"name": "extract", "component_type": "extractor"},
        {"name": "clean", "component_type": "transformer", "configuration": {"strict": True}},
        {"name": "load", "component_type": "loader"},
    ]
    dependencies = [
        {"component": e.split("<")[0], "depends_on": e.split("<")[1]}
        for e in ["clean<extract", "load<clean", *edges.split()]
    ]
    return {
        "name": name,
        "tags": ["finance", "daily"],
        "components": components,
        "dependencies": dependencies,
        **settings,
    }


async def _saved(db: Database, name: str = "nightly") -> SavedJob:
    return await save_job(db, _spec(name=name), actor=ACTOR)


async def test_creating_writes_components_edges_tags_version_and_audit(db: Database) -> None:
    saved = await _saved(db)

    assert saved.version == 1
    order = await jobs.list_components_in_topological_order(db, job_id=saved.job_id)
    assert [(c.name, c.depth) for c in order] == [("extract", 0), ("clean", 1), ("load", 2)]
    assert [t.name for t in await jobs.list_job_tags(db, job_id=saved.job_id)] == [
        "daily",
        "finance",
    ]
    assert saved.spec.tags == ["daily", "finance"]
    assert saved.spec.dependencies == [
        DependencySpec("clean", "extract"),
        DependencySpec("load", "clean"),
    ]
    [entry] = await audit_log.list_audit_entries_for_entity(
        db, entity_type="jobs", entity_id=str(saved.job_id), before_at=None, before_id=None, limit=5
    )
    assert entry.action == "create"


async def test_updating_keeps_component_ids_by_name_and_drops_the_rest(db: Database) -> None:
    saved = await _saved(db)
    before = {c.name: c.id for c in await jobs.list_components(db, job_id=saved.job_id)}
    spec = _spec(tags=["ops"])
    spec["components"] = [
        {"name": "extract", "component_type": "extractor"},
        {"name": "publish", "component_type": "loader"},
    ]
    spec["dependencies"] = [{"component": "publish", "depends_on": "extract"}]

    updated = await save_job(db, spec, actor=ACTOR, job_id=saved.job_id)

    after = {c.name: c.id for c in await jobs.list_components(db, job_id=saved.job_id)}
    assert updated.version == 2
    assert set(after) == {"extract", "publish"}
    assert after["extract"] == before["extract"]
    assert updated.spec.tags == ["ops"]
    assert updated.spec.dependencies == [DependencySpec("publish", "extract")]


async def test_a_cycle_is_a_dependency_cycle_naming_it_and_writes_nothing(db: Database) -> None:
    saved = await _saved(db)
    before = await snapshot(db)

    with pytest.raises(DependencyCycle) as caught:
        await save_job(db, _spec("extract<load"), actor=ACTOR, job_id=saved.job_id)

    assert set(caught.value.components) == {"extract", "clean", "load"}
    assert caught.value.constraint == "component_dependencies_no_cycle"
    assert "extract" in str(caught.value)
    assert isinstance(caught.value, CheckViolation)
    with pytest.raises(DependencyCycle) as self_edge:
        await save_job(db, _spec("load<load"), actor=ACTOR, job_id=saved.job_id)
    assert self_edge.value.constraint == "component_dependencies_no_self_dependency"
    assert await snapshot(db) == before


@pytest.mark.parametrize(("change", "field"), [
    ({"dependencies": [{"component": "load", "depends_on": "nowhere"}]},
     "$.dependencies[0].depends_on"),
    ({"components": [{"name": "a", "component_type": "loader"}] * 2}, "$.components[1].name"),
    ({"components": [{"name": "a", "component_type": "sorcerer"}]},
     "$.components[0].component_type"),
    ({"strategy_type": "eventually"}, "$.strategy_type"),
])  # fmt: skip
async def test_bad_input_is_invalid_input_naming_the_field_and_writes_nothing(
    db: Database, change: dict[str, object], field: str
) -> None:
    saved = await _saved(db)
    before = await snapshot(db)
    with pytest.raises(InvalidInput) as caught:
        await save_job(db, {**_spec(), **change}, actor=ACTOR, job_id=saved.job_id)
    assert caught.value.field == field
    assert await snapshot(db) == before


async def test_negative_retries_and_a_name_taken_are_typed_and_write_nothing(
    db: Database,
) -> None:
    await _saved(db, name="taken")
    saved = await _saved(db, name="mine")
    before = await snapshot(db)
    with pytest.raises(CheckViolation) as negative:
        await save_job(db, _spec(num_of_retries=-1), actor=ACTOR, job_id=saved.job_id)
    assert negative.value.columns == ("num_of_retries",)
    with pytest.raises(Conflict) as taken:
        await save_job(db, _spec(name="taken"), actor=ACTOR)
    assert taken.value.columns == ("name",)
    with pytest.raises(NotFound):
        await save_job(db, _spec(), actor=ACTOR, job_id=uuid4())
    assert await snapshot(db) == before


async def test_add_dependency_writes_a_version_or_a_typed_error(db: Database) -> None:
    saved = await _saved(db)
    other = await _saved(db, name="other")
    ids = {c.name: c.id for c in await jobs.list_components(db, job_id=saved.job_id)}
    theirs = {c.name: c.id for c in await jobs.list_components(db, job_id=other.job_id)}

    added = await add_dependency(db, saved.job_id, ids["load"], ids["extract"], actor=ACTOR)
    assert added.version == 2
    assert DependencySpec("load", "extract") in added.spec.dependencies

    before = await snapshot(db)
    with pytest.raises(DependencyCycle) as cycle:
        await add_dependency(db, saved.job_id, ids["extract"], ids["load"], actor=ACTOR)
    assert cycle.value.components == ("extract", "load")
    with pytest.raises(InvalidReference) as across:
        await add_dependency(db, saved.job_id, ids["load"], theirs["extract"], actor=ACTOR)
    assert across.value.columns == ("job_id", "depends_on_id")
    with pytest.raises(NotFound):
        await add_dependency(db, saved.job_id, ids["load"], uuid4(), actor=ACTOR)
    with pytest.raises(NotFound):
        await add_dependency(db, uuid4(), ids["load"], ids["clean"], actor=ACTOR)
    assert await snapshot(db) == before


async def test_restoring_a_job_version_brings_back_its_components(db: Database) -> None:
    saved = await _saved(db)
    spec = _spec()
    spec["components"] = [{"name": "only", "component_type": "validator"}]
    spec["dependencies"] = []
    await save_job(db, spec, actor=ACTOR, job_id=saved.job_id)

    restored = await restore_job_version(db, saved.job_id, 1, actor=ACTOR)

    assert restored.version == 3
    assert restored.spec == saved.spec
    with pytest.raises(NotFound):
        await restore_job_version(db, saved.job_id, 9, actor=ACTOR)


async def test_deleting_a_job_audits_it(db: Database) -> None:
    saved = await _saved(db)
    deleted = await delete_job(db, saved.job_id, actor=ACTOR)
    assert deleted.name == "nightly"
    assert await jobs.get_job(db, id=saved.job_id) is None
    entries = await audit_log.list_audit_entries_for_entity(
        db, entity_type="jobs", entity_id=str(saved.job_id), before_at=None, before_id=None, limit=5
    )
    assert [e.action for e in entries] == ["delete", "create"]
    with pytest.raises(NotFound):
        await delete_job(db, saved.job_id, actor=ACTOR)
