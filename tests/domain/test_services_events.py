"""etlstore.services.events: ingestion and the consumer helpers."""

from __future__ import annotations

import asyncio

import pytest

from etlstore import Database
from etlstore.queries import events
from etlstore.queries.models import Event, EventStatus
from etlstore.services import InvalidInput
from etlstore.services.events import (
    EventIn,
    ingest_event,
    ingest_events,
    process_event_batch,
    run_event_consumer,
)


async def test_ingest_event_with_a_key_returns_the_first_event_again(db: Database) -> None:
    first = await ingest_event(
        db, {"event_type": "file.arrived", "data": {"a": 1}, "idempotency_key": "k"}
    )
    again = await ingest_event(db, EventIn("file.arrived", {"a": 2}, "k"))
    assert again == first
    assert first.data == {"a": 1}


async def test_malformed_events_are_invalid_input_naming_the_field(db: Database) -> None:
    with pytest.raises(InvalidInput) as one:
        await ingest_event(db, {"data": {}})
    assert "event_type" in str(one.value)
    with pytest.raises(InvalidInput) as many:
        await ingest_events(db, [{"event_type": "a", "data": {}}, {"event_type": 5, "data": {}}])
    assert many.value.field == "$[1].event_type"
    assert await events.count_pending_events(db) == 0


async def test_ingest_events_copies_a_batch(db: Database) -> None:
    batch = [EventIn("row.changed", {"n": n}) for n in range(2_000)]
    assert await ingest_events(db, batch) == 2_000
    assert await events.count_pending_events(db) == 2_000


async def test_a_batch_stores_task_context_or_the_error_per_event(db: Database) -> None:
    good = await ingest_event(db, {"event_type": "ok", "data": {"n": 2}})
    bad = await ingest_event(db, {"event_type": "bad", "data": {}})

    async def handler(event: Event) -> object:
        if event.event_type == "bad":
            raise ValueError("cannot parse")
        assert isinstance(event.data, dict)
        return {"doubled": 2 * event.data["n"]}

    assert await process_event_batch(db, consumer_id="c", handler=handler, limit=10) == 2
    done, failed = await events.get_event(db, id=good.id), await events.get_event(db, id=bad.id)
    assert done is not None
    assert (done.status, done.task_context) == (
        EventStatus.DONE,
        {"doubled": 4},
    )
    assert failed is not None
    assert (failed.status, failed.error) == (EventStatus.FAILED, "ValueError('cannot parse')")
    assert await process_event_batch(db, consumer_id="c", handler=handler, limit=10) == 0


async def test_the_consumer_loop_runs_until_stopped(db: Database) -> None:
    for n in range(5):
        await ingest_event(db, {"event_type": "e", "data": {"n": n}})
    stop = asyncio.Event()
    handled: list[object] = []

    async def handler(event: Event) -> object:
        handled.append(event.data)
        if len(handled) == 5:
            stop.set()
        return None

    claimed = await run_event_consumer(
        db, consumer_id="c", handler=handler, stop=stop, batch=2, idle_sleep=0.01
    )
    assert claimed == 5
    assert sorted(handled, key=str) == [{"n": n} for n in range(5)]
