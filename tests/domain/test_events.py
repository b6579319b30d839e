"""sql/events.sql: bulk ingest, claiming batches, outcomes and reclaiming stale claims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from etlstore import Database
from etlstore.errors import CheckViolation, Conflict
from etlstore.queries import events
from etlstore.queries.events import CopyEventsRecord
from etlstore.queries.models import Event, EventStatus

from ._factories import walk_pages


async def test_copy_events_stores_ten_thousand_at_once(db: Database) -> None:
    records = [CopyEventsRecord("file.arrived", {"n": n}, None) for n in range(10_000)]
    assert await events.copy_events(db, records=records) == 10_000
    assert await events.count_pending_events(db) == 10_000
    [oldest] = await events.claim_events(db, consumer_id="c", limit=1)
    assert oldest.event_type == "file.arrived"
    assert isinstance(oldest.data, dict)


async def test_a_duplicate_key_in_a_copy_is_a_conflict_and_stores_nothing(db: Database) -> None:
    records = [CopyEventsRecord("e", {}, key) for key in ["a", "b", "a"]]
    with pytest.raises(Conflict) as caught:
        await events.copy_events(db, records=records)
    assert caught.value.columns == ("idempotency_key",)
    assert await events.count_pending_events(db) == 0


async def test_ingest_with_a_key_stores_one_event(db: Database) -> None:
    first = await events.ingest_event(db, event_type="e", data={"a": 1}, idempotency_key="k")
    assert first is not None
    assert first.status == EventStatus.PENDING
    assert await events.ingest_event(db, event_type="e", data={"a": 2}, idempotency_key="k") is None
    assert await events.get_event_by_idempotency_key(db, idempotency_key="k") == first
    assert await events.get_event(db, id=first.id) == first


async def test_an_empty_event_type_is_a_check_violation(db: Database) -> None:
    with pytest.raises(CheckViolation) as caught:
        await events.ingest_event(db, event_type="", data={}, idempotency_key=None)
    assert caught.value.columns == ("event_type",)


async def test_claim_takes_pending_oldest_first_and_outcomes_need_the_claim(
    db: Database,
) -> None:
    made = [
        await events.ingest_event(db, event_type="e", data={"n": n}, idempotency_key=None)
        for n in range(3)
    ]
    first, second = await events.claim_events(db, consumer_id="c1", limit=2)
    assert [first.id, second.id] == [e.id for e in made[:2] if e is not None]
    assert (first.status, first.claimed_by, first.attempts) == (EventStatus.PROCESSING, "c1", 1)
    assert await events.mark_event_done(db, id=first.id, consumer_id="c2", task_context={}) is None

    done = await events.mark_event_done(db, id=first.id, consumer_id="c1", task_context={"rows": 5})
    failed = await events.mark_event_failed(db, id=second.id, consumer_id="c1", error="bad")

    assert done is not None
    assert (done.status, done.task_context) == (EventStatus.DONE, {"rows": 5})
    assert done.processed_at is not None
    assert failed is not None
    assert (failed.status, failed.error) == (EventStatus.FAILED, "bad")
    assert await events.count_pending_events(db) == 1


async def test_reclaim_returns_stale_claims_and_fails_them_after_max_attempts(
    db: Database,
) -> None:
    for n in range(2):
        await events.ingest_event(db, event_type="e", data={"n": n}, idempotency_key=None)
    claimed = await events.claim_events(db, consumer_id="dead", limit=2)
    await db.execute("UPDATE events SET attempts = 3 WHERE id = $1", claimed[1].id)
    later = datetime.now(UTC) + timedelta(seconds=1)
    # A claim newer than the cutoff stays.
    assert await events.reclaim_stale_events(
        db, claimed_before=later - timedelta(hours=1), max_attempts=3
    ) == 0  # fmt: skip

    assert await events.reclaim_stale_events(db, claimed_before=later, max_attempts=3) == 2

    back = await events.get_event(db, id=claimed[0].id)
    given_up = await events.get_event(db, id=claimed[1].id)
    assert back is not None
    assert (back.status, back.claimed_by) == (EventStatus.PENDING, None)
    assert given_up is not None
    assert given_up.status == EventStatus.FAILED
    assert await events.mark_event_done(
        db, id=claimed[0].id, consumer_id="dead", task_context={}
    ) is None  # fmt: skip


@pytest.mark.parametrize("limit", [1, 2, 4])
async def test_list_events_walks_newest_first_and_by_type_in_a_window(
    db: Database, limit: int
) -> None:
    async with db.transaction() as tx:  # equal created_at: ordered by id
        for kind in ["a", "b", "a"]:
            await events.ingest_event(tx, event_type=kind, data={}, idempotency_key=None)
    last = await events.ingest_event(db, event_type="a", data={}, idempotency_key=None)
    assert last is not None

    async def page(previous: Event | None) -> list[Event]:
        return await events.list_events(
            db,
            before_created_at=None if previous is None else previous.created_at,
            before_id=None if previous is None else previous.id,
            limit=limit,
        )

    walked = [e for p in await walk_pages(page, limit) for e in p]
    assert walked[0].id == last.id
    assert [(e.created_at, e.id) for e in walked] == sorted(
        ((e.created_at, e.id) for e in walked), reverse=True
    )
    assert len(walked) == 4
    now = datetime.now(UTC)
    of_type = await events.list_events_by_type(
        db, event_type="a", since=now - timedelta(hours=1), until=now + timedelta(1), limit=10
    )
    assert len(of_type) == 3
    assert await events.list_events_by_type(
        db, event_type="a", since=now + timedelta(1), until=now + timedelta(2), limit=10
    ) == []  # fmt: skip
    assert await events.delete_event(db, id=last.id) is not None
    assert await events.delete_event(db, id=last.id) is None
