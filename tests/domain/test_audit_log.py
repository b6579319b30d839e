"""sql/audit_log.sql: the append-only log of changes, paged newest first by (at, id)."""

from __future__ import annotations

from uuid import UUID

import pytest

from etlstore import Database
from etlstore.errors import CheckViolation
from etlstore.queries import audit_log
from etlstore.queries.models import AuditLog

from ._factories import make_user, walk_pages


async def _log(db: Database, actor_user_id: UUID | None, entity_id: str, count: int) -> None:
    # One transaction: every row gets the same `at`, so only the id orders them.
    async with db.transaction() as tx:
        for n in range(count):
            await audit_log.create_audit_entry(
                tx,
                actor_user_id=actor_user_id,
                actor="ada" if actor_user_id else "system",
                action="update",
                entity_type="pipelines",
                entity_id=entity_id,
                before={"n": n},
                after={"n": n + 1},
            )


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
async def test_pages_are_newest_first_and_ties_on_time_are_ordered_by_id(
    db: Database, limit: int
) -> None:
    user = await make_user(db)
    await _log(db, None, "p1", 2)
    await _log(db, user.id, "p2", 3)
    await _log(db, user.id, "p1", 2)
    everything = await audit_log.list_audit_entries(db, before_at=None, before_id=None, limit=100)
    assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)

    async def all_page(last: AuditLog | None) -> list[AuditLog]:
        return await audit_log.list_audit_entries(
            db,
            before_at=None if last is None else last.at,
            before_id=None if last is None else last.id,
            limit=limit,
        )

    async def entity_page(last: AuditLog | None) -> list[AuditLog]:
        return await audit_log.list_audit_entries_for_entity(
            db,
            entity_type="pipelines",
            entity_id="p1",
            before_at=None if last is None else last.at,
            before_id=None if last is None else last.id,
            limit=limit,
        )

    async def actor_page(last: AuditLog | None) -> list[AuditLog]:
        return await audit_log.list_audit_entries_by_actor(
            db,
            actor_user_id=user.id,
            before_at=None if last is None else last.at,
            before_id=None if last is None else last.id,
            limit=limit,
        )

    def walked(pages: list[list[AuditLog]]) -> list[int]:
        return [e.id for p in pages for e in p]

    assert walked(await walk_pages(all_page, limit)) == [e.id for e in everything]
    assert walked(await walk_pages(entity_page, limit)) == [
        e.id for e in everything if e.entity_id == "p1"
    ]
    assert walked(await walk_pages(actor_page, limit)) == [
        e.id for e in everything if e.actor_user_id == user.id
    ]


async def test_an_entry_without_before_and_after_is_a_check_violation(db: Database) -> None:
    with pytest.raises(CheckViolation) as caught:
        await audit_log.create_audit_entry(
            db,
            actor_user_id=None,
            actor="system",
            action="noop",
            entity_type="pipelines",
            entity_id="x",
            before=None,
            after=None,
        )
    assert caught.value.constraint == "audit_log_before_or_after_check"
    assert await audit_log.list_audit_entries(db, before_at=None, before_id=None, limit=5) == []


async def test_get_audit_entry_by_id(db: Database) -> None:
    entry = await audit_log.create_audit_entry(
        db,
        actor_user_id=None,
        actor="system",
        action="create",
        entity_type="jobs",
        entity_id="j",
        before=None,
        after={"name": "j"},
    )
    assert await audit_log.get_audit_entry(db, id=entry.id) == entry
    assert await audit_log.get_audit_entry(db, id=entry.id + 1) is None
