"""sql/jobs.sql: jobs, tags, components and their dependency DAG."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from etlstore import Database
from etlstore.errors import CheckViolation, Conflict, InvalidReference
from etlstore.queries import dataclasses, jobs
from etlstore.queries.jobs import AddComponentDependenciesParams
from etlstore.queries.models import ComponentStatus, ComponentType, Job, Tag

from ._factories import make_job, snapshot, walk_pages


async def _components(db: Database, job_id: UUID, *names: str) -> dict[str, UUID]:
    made = {}
    for name in names:
        component = await jobs.create_component(
            db,
            job_id=job_id,
            name=name,
            component_type=ComponentType.TRANSFORMER,
            configuration={},
            status=ComponentStatus.ACTIVE,
            dataclass_id=None,
        )
        made[name] = component.id
    return made


async def _edges(db: Database, job_id: UUID, c: dict[str, UUID], *edges: str) -> None:
    """Edges written as "a<b": a runs after b."""
    for edge in edges:
        after, before = edge.split("<")
        await jobs.add_component_dependency(
            db, job_id=job_id, component_id=c[after], depends_on_id=c[before]
        )


async def _order(db: Database, job_id: UUID) -> list[tuple[str, int]]:
    rows = await jobs.list_components_in_topological_order(db, job_id=job_id)
    return [(r.name, r.depth) for r in rows]


async def test_get_job_by_id_and_name(db: Database) -> None:
    job = await make_job(db, "nightly")
    assert await jobs.get_job(db, id=job.id) == job
    assert await jobs.get_job_by_name(db, name="nightly") == job
    assert await jobs.get_job(db, id=uuid4()) is None


async def test_with_components_returns_components_by_name_and_every_edge(db: Database) -> None:
    job = await make_job(db)
    c = await _components(db, job.id, "load", "extract", "clean")
    await _edges(db, job.id, c, "clean<extract", "load<clean")

    loaded = await jobs.get_job_with_components(db, id=job.id)

    assert loaded is not None
    assert [x.name for x in loaded.components] == ["clean", "extract", "load"]
    assert {(d.component_id, d.depends_on_id) for d in loaded.dependencies} == {
        (c["clean"], c["extract"]),
        (c["load"], c["clean"]),
    }
    empty = await make_job(db, "empty")
    loaded_empty = await jobs.get_job_with_components(db, id=empty.id)
    assert loaded_empty is not None
    assert (loaded_empty.components, loaded_empty.dependencies) == ([], [])
    assert await jobs.get_job_with_components(db, id=uuid4()) is None


async def test_topological_order_of_a_diamond(db: Database) -> None:
    job = await make_job(db)
    c = await _components(db, job.id, "d", "c", "b", "a")
    await _edges(db, job.id, c, "b<a", "c<a", "d<b", "d<c")
    assert await _order(db, job.id) == [("a", 0), ("b", 1), ("c", 1), ("d", 2)]


async def test_topological_order_uses_the_longest_chain(db: Database) -> None:
    job = await make_job(db)
    c = await _components(db, job.id, "a", "b", "c", "z")
    # z depends on a directly and through b and c: it comes after c.
    await _edges(db, job.id, c, "b<a", "c<b", "z<c", "z<a")
    assert await _order(db, job.id) == [("a", 0), ("b", 1), ("c", 2), ("z", 3)]


async def test_topological_order_of_a_forest_and_of_an_empty_job(db: Database) -> None:
    job = await make_job(db)
    c = await _components(db, job.id, "x2", "y1", "x1", "lone")
    await _edges(db, job.id, c, "x2<x1")
    assert await _order(db, job.id) == [("lone", 0), ("x1", 0), ("y1", 0), ("x2", 1)]
    empty = await make_job(db, "empty")
    assert await _order(db, empty.id) == []


async def test_an_edge_closing_a_cycle_is_rejected_and_changes_nothing(db: Database) -> None:
    job = await make_job(db)
    c = await _components(db, job.id, "a", "b", "c")
    await _edges(db, job.id, c, "b<a", "c<b")
    before = await snapshot(db)
    with pytest.raises(CheckViolation) as caught:
        await _edges(db, job.id, c, "a<c")
    assert caught.value.constraint == "component_dependencies_no_cycle"
    with pytest.raises(CheckViolation) as self_edge:
        await _edges(db, job.id, c, "a<a")
    assert self_edge.value.constraint == "component_dependencies_no_self_dependency"
    assert await snapshot(db) == before


async def test_a_cycle_closed_inside_one_rewrite_is_rejected_whole(db: Database) -> None:
    job = await make_job(db)
    c = await _components(db, job.id, "a", "b", "c")
    before = await snapshot(db)
    edges = [("b", "a"), ("c", "b"), ("a", "c")]
    with pytest.raises(CheckViolation) as caught:
        await jobs.add_component_dependencies(
            db,
            params=[AddComponentDependenciesParams(job.id, c[x], c[y]) for x, y in edges],
        )
    assert caught.value.constraint == "component_dependencies_no_cycle"
    assert await snapshot(db) == before


async def test_an_edge_to_another_jobs_component_is_an_invalid_reference(db: Database) -> None:
    job = await make_job(db, "one")
    other = await make_job(db, "two")
    mine = await _components(db, job.id, "a")
    theirs = await _components(db, other.id, "b")
    before = await snapshot(db)
    with pytest.raises(InvalidReference) as caught:
        await jobs.add_component_dependency(
            db, job_id=job.id, component_id=mine["a"], depends_on_id=theirs["b"]
        )
    assert caught.value.constraint == "component_dependencies_depends_on_fkey"
    assert caught.value.columns == ("job_id", "depends_on_id")
    assert await snapshot(db) == before


async def test_adding_an_edge_twice_returns_none_and_removing_counts(db: Database) -> None:
    job = await make_job(db)
    c = await _components(db, job.id, "a", "b")
    added = await jobs.add_component_dependency(
        db, job_id=job.id, component_id=c["b"], depends_on_id=c["a"]
    )
    assert added is not None
    again = await jobs.add_component_dependency(
        db, job_id=job.id, component_id=c["b"], depends_on_id=c["a"]
    )
    assert again is None
    assert [(d.component_id, d.depends_on_id) for d in await jobs.list_component_dependencies(
        db, job_id=job.id
    )] == [(c["b"], c["a"])]  # fmt: skip
    removed = await jobs.remove_component_dependency(
        db, job_id=job.id, component_id=c["b"], depends_on_id=c["a"]
    )
    assert removed == 1


async def test_a_component_name_is_unique_per_job_only(db: Database) -> None:
    job = await make_job(db, "one")
    other = await make_job(db, "two")
    await _components(db, job.id, "extract")
    await _components(db, other.id, "extract")
    with pytest.raises(Conflict) as caught:
        await _components(db, job.id, "extract")
    assert caught.value.columns == ("job_id", "name")
    found = await jobs.get_component_by_name(db, job_id=other.id, name="extract")
    assert found is not None
    assert found.job_id == other.id


async def test_negative_retries_are_a_check_violation(db: Database) -> None:
    with pytest.raises(CheckViolation) as caught:
        await make_job(db, num_of_retries=-1)
    assert caught.value.columns == ("num_of_retries",)


async def test_tags_are_listed_by_name_and_jobs_by_tag_page_by_id(db: Database) -> None:
    tag = await jobs.create_tag(db, name="finance")
    other = await jobs.create_tag(db, name="alpha")
    made = [await make_job(db, name) for name in ["a", "b", "c"]]
    for job in made:
        assert await jobs.add_job_tag(db, job_id=job.id, tag_id=tag.id) is not None
    assert await jobs.add_job_tag(db, job_id=made[0].id, tag_id=tag.id) is None
    await jobs.add_job_tag(db, job_id=made[0].id, tag_id=other.id)
    assert [t.name for t in await jobs.list_job_tags(db, job_id=made[0].id)] == [
        "alpha",
        "finance",
    ]

    async def page(last: Job | None) -> list[Job]:
        after = None if last is None else last.id
        return await jobs.list_jobs_by_tag(db, tag_id=tag.id, after_job_id=after, limit=2)

    walked = [j.id for p in await walk_pages(page, 2) for j in p]
    assert walked == sorted(j.id for j in made)
    assert await jobs.remove_job_tag(db, job_id=made[0].id, tag_id=tag.id) == 1


@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_list_jobs_and_tags_walk_every_row_once_by_name(db: Database, limit: int) -> None:
    for name in ["b", "c", "a"]:
        await make_job(db, name)
        await jobs.create_tag(db, name=name)

    async def job_page(last: Job | None) -> list[Job]:
        after = None if last is None else last.name
        return await jobs.list_jobs(db, after_name=after, limit=limit)

    async def tag_page(last: Tag | None) -> list[Tag]:
        after = None if last is None else last.name
        return await jobs.list_tags(db, after_name=after, limit=limit)

    assert [j.name for p in await walk_pages(job_page, limit) for j in p] == ["a", "b", "c"]
    assert [t.name for p in await walk_pages(tag_page, limit) for t in p] == ["a", "b", "c"]


async def test_deleting_a_component_takes_its_edges(db: Database) -> None:
    job = await make_job(db)
    c = await _components(db, job.id, "a", "b")
    await _edges(db, job.id, c, "b<a")
    assert await jobs.delete_component(db, id=c["a"]) is not None
    assert await jobs.list_component_dependencies(db, job_id=job.id) == []
    assert await jobs.delete_component(db, id=c["a"]) is None


async def test_tags_by_id_rename_and_delete(db: Database) -> None:
    tag = await jobs.create_tag(db, name="fin")
    job = await make_job(db)
    await jobs.add_job_tag(db, job_id=job.id, tag_id=tag.id)
    assert await jobs.get_tag(db, id=tag.id) == tag
    renamed = await jobs.update_tag(db, id=tag.id, name="finance")
    assert renamed is not None
    assert renamed.name == "finance"
    with pytest.raises(Conflict):
        await jobs.create_tag(db, name="finance")
    assert await jobs.delete_tag(db, id=tag.id) == renamed
    assert await jobs.list_job_tags(db, job_id=job.id) == []
    assert await jobs.get_tag(db, id=tag.id) is None
    assert await jobs.update_tag(db, id=tag.id, name="x") is None
    assert await jobs.delete_tag(db, id=tag.id) is None


async def test_update_component_and_the_components_of_a_dataclass(db: Database) -> None:
    dataclass = await dataclasses.create_dataclass(
        db, name="order", dataclass_type="record", schema_definition={}, validation_rules=[]
    )
    job = await make_job(db)
    c = await _components(db, job.id, "b", "a")
    updated = await jobs.update_component(
        db,
        id=c["a"],
        name="a2",
        component_type=ComponentType.VALIDATOR,
        configuration={"x": 1},
        status=ComponentStatus.DISABLED,
        dataclass_id=dataclass.id,
    )
    assert updated is not None
    assert (updated.name, updated.component_type, updated.status, updated.configuration) == (
        "a2",
        ComponentType.VALIDATOR,
        ComponentStatus.DISABLED,
        {"x": 1},
    )
    await jobs.update_component(
        db,
        id=c["b"],
        name="b",
        component_type=ComponentType.LOADER,
        configuration={},
        status=ComponentStatus.ACTIVE,
        dataclass_id=dataclass.id,
    )
    using = await jobs.list_components_by_dataclass(db, dataclass_id=dataclass.id)
    assert [x.name for x in using] == ["a2", "b"]
    with pytest.raises(InvalidReference):  # still used: ON DELETE RESTRICT
        await dataclasses.delete_dataclass(db, id=dataclass.id)
    assert (
        await jobs.update_component(
            db,
            id=uuid4(),
            name="x",
            component_type=ComponentType.LOADER,
            configuration={},
            status=ComponentStatus.ACTIVE,
            dataclass_id=None,
        )
        is None
    )
