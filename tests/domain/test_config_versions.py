"""sql/config_versions.sql: immutable, numbered versions of pipeline and job configurations."""

from __future__ import annotations

from uuid import uuid4

import asyncpg
import pytest

from etlstore import Database
from etlstore.queries import config_versions
from etlstore.queries.config_versions import ListConfigVersionsRow
from etlstore.queries.models import ConfigEntityType

from ._factories import make_user, walk_pages

PIPELINE = ConfigEntityType.PIPELINE


async def test_versions_are_numbered_from_one_per_entity(db: Database) -> None:
    first, second = uuid4(), uuid4()
    numbers = []
    for entity, n in [(first, 1), (second, 1), (first, 2), (first, 3)]:
        version = await config_versions.create_config_version(
            db,
            entity_type=PIPELINE,
            entity_id=entity,
            configuration={"n": n},
            created_by=None,
            actor="system",
        )
        numbers.append((entity, version.version))
    assert numbers == [(first, 1), (second, 1), (first, 2), (first, 3)]
    # The same id as a job is another entity.
    job_version = await config_versions.create_config_version(
        db,
        entity_type=ConfigEntityType.JOB,
        entity_id=first,
        configuration={},
        created_by=None,
        actor="system",
    )
    assert job_version.version == 1


async def test_get_by_number_latest_and_by_id(db: Database) -> None:
    user = await make_user(db)
    entity = uuid4()
    written = [
        await config_versions.create_config_version(
            db,
            entity_type=PIPELINE,
            entity_id=entity,
            configuration={"n": n},
            created_by=user.id,
            actor="ada",
        )
        for n in range(3)
    ]
    second = await config_versions.get_config_version_by_number(
        db, entity_type=PIPELINE, entity_id=entity, version=2
    )
    assert second == written[1]
    assert second.configuration == {"n": 1}
    latest = await config_versions.get_latest_config_version(
        db, entity_type=PIPELINE, entity_id=entity
    )
    assert latest == written[2]
    assert await config_versions.get_config_version(db, id=written[0].id) == written[0]
    assert (
        await config_versions.get_config_version_by_number(
            db, entity_type=PIPELINE, entity_id=entity, version=4
        )
        is None
    )
    assert (
        await config_versions.get_latest_config_version(db, entity_type=PIPELINE, entity_id=uuid4())
        is None
    )


@pytest.mark.parametrize("limit", [1, 2, 5, 6])
async def test_list_versions_walks_newest_first(db: Database, limit: int) -> None:
    entity = uuid4()
    for _ in range(5):
        await config_versions.create_config_version(
            db,
            entity_type=PIPELINE,
            entity_id=entity,
            configuration={},
            created_by=None,
            actor="system",
        )

    async def page(last: ListConfigVersionsRow | None) -> list[ListConfigVersionsRow]:
        return await config_versions.list_config_versions(
            db,
            entity_type=PIPELINE,
            entity_id=entity,
            before_version=None if last is None else last.version,
            limit=limit,
        )

    assert [v.version for p in await walk_pages(page, limit) for v in p] == [5, 4, 3, 2, 1]


async def test_a_version_cannot_be_changed(db: Database) -> None:
    written = await config_versions.create_config_version(
        db,
        entity_type=PIPELINE,
        entity_id=uuid4(),
        configuration={"a": 1},
        created_by=None,
        actor="system",
    )
    with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError):
        await db.execute("UPDATE config_versions SET actor = 'x' WHERE id = $1", written.id)
    assert await config_versions.get_config_version(db, id=written.id) == written
