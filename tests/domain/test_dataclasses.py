"""sql/dataclasses.sql: schemas of the records flowing through jobs."""

from __future__ import annotations

from uuid import uuid4

import pytest

from etlstore import Database
from etlstore.errors import Conflict
from etlstore.queries import dataclasses
from etlstore.queries.models import Dataclass

from ._factories import walk_pages


async def _make(db: Database, name: str) -> Dataclass:
    return await dataclasses.create_dataclass(
        db,
        name=name,
        dataclass_type="record",
        schema_definition={"fields": [{"name": "id", "type": "int"}]},
        validation_rules=[{"not_null": "id"}],
    )


async def test_create_get_update_delete_round_trip_the_json_documents(db: Database) -> None:
    created = await _make(db, "order")
    assert created.schema_definition == {"fields": [{"name": "id", "type": "int"}]}
    assert await dataclasses.get_dataclass(db, id=created.id) == created
    assert await dataclasses.get_dataclass_by_name(db, name="order") == created
    updated = await dataclasses.update_dataclass(
        db,
        id=created.id,
        name="order_v2",
        dataclass_type="table",
        schema_definition={},
        validation_rules=[],
    )
    assert updated is not None
    assert (updated.name, updated.validation_rules) == ("order_v2", [])
    assert await dataclasses.delete_dataclass(db, id=created.id) == updated
    assert await dataclasses.get_dataclass(db, id=created.id) is None


async def test_unknown_ids_return_none(db: Database) -> None:
    missing = uuid4()
    assert await dataclasses.get_dataclass(db, id=missing) is None
    assert await dataclasses.get_dataclass_by_name(db, name="nope") is None
    assert await dataclasses.delete_dataclass(db, id=missing) is None
    assert (
        await dataclasses.update_dataclass(
            db, id=missing, name="x", dataclass_type="t", schema_definition={}, validation_rules=[]
        )
        is None
    )


async def test_a_name_taken_is_a_conflict_naming_the_name(db: Database) -> None:
    await _make(db, "order")
    with pytest.raises(Conflict) as caught:
        await _make(db, "order")
    assert caught.value.columns == ("name",)


@pytest.mark.parametrize("limit", [1, 2, 3, 4])
async def test_list_dataclasses_walks_every_one_once_by_name(db: Database, limit: int) -> None:
    for name in ["c", "a", "b"]:
        await _make(db, name)

    async def page(last: Dataclass | None) -> list[Dataclass]:
        after = None if last is None else last.name
        return await dataclasses.list_dataclasses(db, after_name=after, limit=limit)

    assert [d.name for p in await walk_pages(page, limit) for d in p] == ["a", "b", "c"]
