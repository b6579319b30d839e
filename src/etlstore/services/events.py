"""Event ingestion (bulk COPY or one keyed event) and the consumer loop helper.

Consumers claim a batch of pending events (FOR UPDATE SKIP LOCKED, autocommitted so the claim
is visible at once), run the caller's handler per event, and store its result as the event's
task_context (done) or the exception as its error (failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

import msgspec

from etlstore._database import Database
from etlstore.queries import events
from etlstore.queries.events import CopyEventsRecord
from etlstore.queries.models import Event
from etlstore.services._common import convert, not_found

__all__ = [
    "EventHandler",
    "EventIn",
    "ingest_event",
    "ingest_events",
    "process_event_batch",
    "reclaim_stale_events",
    "run_event_consumer",
]

#: Processes one event; returns its task_context (any msgspec-encodable value).
EventHandler = Callable[[Event], Awaitable[object]]

_log = logging.getLogger("etlstore.services.events")


class EventIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An incoming event as a producer sends it."""

    event_type: str
    data: object
    idempotency_key: str | None = None


async def ingest_events(db: Database, batch: Iterable[object]) -> int:
    """Store many events at once with COPY; returns how many.

    Each item is an EventIn or its builtins (InvalidInput names the bad field, with the item's
    index). One duplicate idempotency key fails the whole batch with a Conflict.
    """
    records = [
        CopyEventsRecord(e.event_type, e.data, e.idempotency_key)
        for e in convert(list(batch), list[EventIn])
    ]
    return await events.copy_events(db, records=records)


async def ingest_event(db: Database, event: object) -> Event:
    """Store one event; with an idempotency key, sending it again returns the first one."""
    valid = convert(event, EventIn)
    stored = await events.ingest_event(
        db, event_type=valid.event_type, data=valid.data, idempotency_key=valid.idempotency_key
    )
    if stored is not None:
        return stored
    assert valid.idempotency_key is not None  # only a key can make the insert a no-op
    first = await events.get_event_by_idempotency_key(db, idempotency_key=valid.idempotency_key)
    if first is None:  # pragma: no cover - deleted between the two statements
        raise not_found("event with idempotency key", valid.idempotency_key)
    return first


async def process_event_batch(
    db: Database, *, consumer_id: str, handler: EventHandler, limit: int
) -> int:
    """Claim up to ``limit`` pending events and process each; returns how many were claimed.

    A handler that raises marks its event failed with ``repr`` of the exception. A claim lost
    meanwhile (reclaimed as stale) is logged and its outcome dropped.
    """
    claimed = await events.claim_events(db, consumer_id=consumer_id, limit=limit)
    for event in claimed:
        try:
            task_context = await handler(event)
        except Exception as exc:
            _log.info("event %s failed: %r", event.id, exc)
            marked = await events.mark_event_failed(
                db, id=event.id, consumer_id=consumer_id, error=repr(exc)
            )
        else:
            marked = await events.mark_event_done(
                db, id=event.id, consumer_id=consumer_id, task_context=task_context
            )
        if marked is None:
            _log.warning("event %s: claim lost before its outcome was stored", event.id)
    return len(claimed)


async def run_event_consumer(
    db: Database,
    *,
    consumer_id: str,
    handler: EventHandler,
    stop: asyncio.Event,
    batch: int = 100,
    idle_sleep: float = 0.5,
) -> int:
    """Process batches until ``stop`` is set; returns how many events this consumer claimed.

    When nothing is pending it sleeps about ``idle_sleep`` seconds (jittered).
    """
    total = 0
    while not stop.is_set():
        claimed = await process_event_batch(
            db, consumer_id=consumer_id, handler=handler, limit=batch
        )
        total += claimed
        if not claimed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), idle_sleep * random.uniform(0.5, 1.5))
    return total


async def reclaim_stale_events(db: Database, *, claimed_before: datetime, max_attempts: int) -> int:
    """Give events claimed before ``claimed_before`` back to the queue (failed after too many)."""
    return await events.reclaim_stale_events(
        db, claimed_before=claimed_before, max_attempts=max_attempts
    )
