"""The mixed workload of the restart tests: reads and idempotent writes, paced, counted.

Fast workers alternate reads (an acknowledged event read back by its key) with writes (an event
ingested or a pipeline run enqueued, each with a fresh idempotency key), every call through
``Database.run_idempotent``. Slow writers keep idempotent inserts in flight at every moment (each
sleeps 50 ms on the server), so a fault always catches some writes whose outcome is unknown.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final
from uuid import UUID

import etlstore
from etlstore.errors import OutcomeUnknown
from etlstore.queries import events
from etlstore.services import events as event_service
from etlstore.services import worker

__all__ = ["Figures", "run_workload", "stored_rows"]

FAST_WORKERS: Final = 20
SLOW_WRITERS: Final = 4
_PERIOD_S: Final = FAST_WORKERS / 1_000  # ~1,000 operations a second from the fast workers

_SLOW_INGEST: Final = """-- slow_ingest_event (fault tests)
INSERT INTO events (event_type, data, idempotency_key)
SELECT 'slow', '{}'::jsonb, $1 FROM pg_sleep(0.05)
-- A retry after a lost connection finds the key taken when the first attempt committed (the
-- attempts of one key never overlap: a writer retries only after the pool reconnected).
WHERE NOT EXISTS (SELECT FROM event_idempotency_keys WHERE idempotency_key = $1)
RETURNING id"""
_EVENT_ID_BY_KEY: Final = "SELECT id FROM events WHERE idempotency_key = $1"


@dataclass
class Figures:
    """What a run did and what it left in the database."""

    ops: int = 0
    elapsed_s: float = 0.0
    errors: list[BaseException] = field(default_factory=list)
    #: Reads of an acknowledged event that found nothing.
    lost_reads: int = 0
    #: idempotency key -> the row id the caller was given.
    acked_events: dict[str, UUID] = field(default_factory=dict)
    acked_runs: dict[str, int] = field(default_factory=dict)
    #: Keys whose write hit OutcomeUnknown at least once before it was resolved.
    unknown: set[str] = field(default_factory=set)
    #: The longest time without a successful operation: how long the pool stopped serving.
    longest_gap_s: float = 0.0
    success_times: list[float] = field(default_factory=list)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.elapsed_s


class _Workload:
    def __init__(self, db: etlstore.Database, pipeline_id: UUID, figures: Figures) -> None:
        self.db = db
        self.pipeline_id = pipeline_id
        self.figures = figures
        self.prefix = uuid.uuid4().hex
        #: The keys of acknowledged events, in the order acknowledged (what reads pick from).
        self.event_keys: list[str] = []
        self.loop = asyncio.get_running_loop()

    async def _ingest(self, db: etlstore.Database, key: str) -> UUID:
        try:
            stored = await event_service.ingest_event(
                db, {"event_type": "fault", "data": {"key": key}, "idempotency_key": key}
            )
        except OutcomeUnknown:
            self.figures.unknown.add(key)
            raise
        return stored.id

    async def _enqueue(self, db: etlstore.Database, key: str) -> int:
        try:
            queued = await worker.enqueue_pipeline_execution(
                db, self.pipeline_id, triggered_by="api", idempotency_key=key
            )
        except OutcomeUnknown:
            self.figures.unknown.add(key)
            raise
        return queued.id

    async def _slow_ingest(self, db: etlstore.Database, key: str) -> UUID:
        try:
            inserted: UUID | None = await db.fetchval(_SLOW_INGEST, key)
            if inserted is not None:
                return inserted
            # The first attempt committed although its caller never heard back.
            found: UUID = await db.fetchval(_EVENT_ID_BY_KEY, key)
        except OutcomeUnknown:
            self.figures.unknown.add(key)
            raise
        return found

    async def _read(self, db: etlstore.Database, key: str) -> bool:
        return await events.get_event_by_idempotency_key(db, idempotency_key=key) is not None

    async def _call(self, op: Callable[[], Awaitable[None]]) -> None:
        try:
            await op()
        except Exception as exc:
            self.figures.errors.append(exc)
            return
        self.figures.ops += 1
        self.figures.success_times.append(self.loop.time())

    async def fast_worker(self, number: int, until: asyncio.Event) -> None:
        next_at = self.loop.time()
        for n in itertools.count():
            if until.is_set():
                return
            key = f"{self.prefix}-{number}-{n}"
            acked = self.event_keys
            if n % 2 == 1 and acked:
                read_key = acked[(n * 7919 + number) % len(acked)]

                async def read(read_key: str = read_key) -> None:
                    if not await self.db.run_idempotent(self._read, read_key):
                        self.figures.lost_reads += 1

                await self._call(read)
            elif n % 4 == 0:

                async def ingest(key: str = key) -> None:
                    self.figures.acked_events[key] = await self.db.run_idempotent(self._ingest, key)
                    self.event_keys.append(key)

                await self._call(ingest)
            else:

                async def enqueue(key: str = key) -> None:
                    self.figures.acked_runs[key] = await self.db.run_idempotent(self._enqueue, key)

                await self._call(enqueue)
            next_at += _PERIOD_S
            await asyncio.sleep(max(0.0, next_at - self.loop.time()))

    async def slow_writer(self, number: int, until: asyncio.Event) -> None:
        for n in itertools.count():
            if until.is_set():
                return
            key = f"{self.prefix}-slow-{number}-{n}"

            async def ingest(key: str = key) -> None:
                self.figures.acked_events[key] = await self.db.run_idempotent(
                    self._slow_ingest, key
                )

            await self._call(ingest)


async def run_workload(
    db: etlstore.Database,
    pipeline_id: UUID,
    fault: Callable[[], None],
    *,
    before_s: float = 1.0,
    after_s: float = 1.0,
) -> Figures:
    """Run the workload; ``fault()`` (blocking, run in a thread) after ``before_s``."""
    figures = Figures()
    workload = _Workload(db, pipeline_id, figures)
    loop = asyncio.get_running_loop()
    until = asyncio.Event()
    start = loop.time()
    async with asyncio.TaskGroup() as group:
        for number in range(FAST_WORKERS):
            group.create_task(workload.fast_worker(number, until))
        for number in range(SLOW_WRITERS):
            group.create_task(workload.slow_writer(number, until))
        await asyncio.sleep(before_s)
        await asyncio.to_thread(fault)
        await asyncio.sleep(after_s)
        until.set()
    figures.elapsed_s = loop.time() - start
    times = [start, *sorted(figures.success_times)]
    figures.longest_gap_s = max(b - a for a, b in itertools.pairwise(times))
    return figures


async def stored_rows(
    db: etlstore.Database, figures: Figures, pipeline_id: UUID
) -> tuple[dict[str, list[UUID]], dict[str, list[int]]]:
    """Every event and run stored under one of the run's keys: key -> ids (one, unless doubled)."""
    prefixes = {key.split("-", 1)[0] for key in [*figures.acked_events, *figures.acked_runs]}
    stored_events: dict[str, list[UUID]] = {}
    stored_runs: dict[str, list[int]] = {}
    for prefix in prefixes:
        for row in await db.fetch(
            "SELECT idempotency_key, id FROM events WHERE starts_with(idempotency_key, $1)", prefix
        ):
            stored_events.setdefault(row["idempotency_key"], []).append(row["id"])
        for row in await db.fetch(
            "SELECT idempotency_key, id FROM pipeline_executions"
            " WHERE pipeline_id = $1 AND starts_with(idempotency_key, $2)",
            pipeline_id,
            prefix,
        ):
            stored_runs.setdefault(row["idempotency_key"], []).append(row["id"])
    return stored_events, stored_runs
