"""Read replicas: ``db.replica`` and ``db.replica_at(lsn)``, routed by a background probe.

Routing is a synchronous look-up of state the probe computed: no round trip is added to a read.
Every ``probe_interval_s`` the probe reads the primary's WAL write position
(``pg_current_wal_lsn()``) and each replica's replay position (``pg_last_wal_replay_lsn()``).
A replica's lag is the time since the newest primary sample its replay position has reached:
on an idle primary the position does not move, so a replica that replayed everything lags 0 s
(``now() - pg_last_xact_replay_timestamp()`` would grow there without bound). A replica that is
down, not in recovery, or lags more than ``max_lag_s`` is skipped until a probe finds it healthy.

Reads that cannot go to a replica go to the primary through a pool of their own whose sessions
are read-only (``default_transaction_read_only``, sent at connect): a write through
``db.replica`` fails the same way wherever it lands, as ``ReadOnly``. That pool opens connections
only when used. A replica that breaks mid-read is marked down and the read runs on the primary:
a hot standby commits nothing, so running it again is always safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

import asyncpg

from etlstore._executor import Connection, ExecutorMethods
from etlstore._observability import query_name
from etlstore.errors import OutcomeUnknown, ReadOnly, Unavailable

if TYPE_CHECKING:
    from etlstore._database import Database

__all__ = ["COMMIT_LSN_SQL", "ReplicaExecutor", "ReplicaStatus", "Router", "parse_lsn"]

_T = TypeVar("_T")
_log = logging.getLogger("etlstore.replicas")

#: The end of everything inserted into the WAL so far: read after a commit, it is at least that
#: commit's end, also under synchronous_commit=off (where the write position may trail it).
#: When the last record ended exactly at a page's end, the insert position points past the next
#: page's header (24 bytes; 40 at a segment's start), which no replica replays until more WAL
#: comes: the header is taken off, and the LSN is the record's end, as replay reports it.
COMMIT_LSN_SQL: Final = """-- etlstore_commit_lsn (etlstore runtime)
SELECT (CASE
    WHEN w.in_segment = 40 THEN w.lsn - 40
    WHEN w.in_segment % current_setting('wal_block_size')::numeric = 24 THEN w.lsn - 24
    ELSE w.lsn
END)::text
FROM (
    SELECT i.lsn, (i.lsn - '0/0'::pg_lsn) % pg_size_bytes(current_setting('wal_segment_size'))
               AS in_segment
    FROM (SELECT pg_current_wal_insert_lsn() AS lsn) AS i
) AS w"""
# Written WAL ends at a record boundary, as a replica's replay position does; the insert
# position may point past a page header that no replica ever "replays".
_PRIMARY_LSN_SQL: Final = (
    "-- etlstore_primary_lsn (etlstore runtime)\nSELECT pg_current_wal_lsn()::text"
)
_REPLICA_SQL: Final = (
    "-- etlstore_replica_probe (etlstore runtime)\n"
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"
)


def parse_lsn(text: str) -> int:
    """``16/B374D848`` -> its byte position."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """One replica as the last probe saw it; ``reason`` says why it is skipped ("" if healthy)."""

    where: str
    healthy: bool
    replay_lsn: int | None
    lag_bytes: int | None
    lag_s: float | None
    reason: str


class _Replica:
    __slots__ = ("db", "replay_lsn", "status")

    def __init__(self, db: Database) -> None:
        self.db = db
        self.replay_lsn = 0
        self.status = ReplicaStatus(repr(db), False, None, None, None, "not probed yet")


class Router:
    """Which database a read goes to, and the probe that keeps that answer current."""

    __slots__ = (
        "_healthy",
        "_max_lag_s",
        "_next",
        "_primary",
        "_probe_interval_s",
        "_probe_task",
        "_replicas",
        "_samples",
        "fallback",
        "replica",
    )

    def __init__(
        self,
        primary: Database,
        fallback: Database,
        replicas: list[Database],
        *,
        max_lag_s: float,
        probe_interval_s: float,
    ) -> None:
        self._primary = primary
        #: Read-only sessions on the primary: where reads go when no replica will do.
        self.fallback = fallback
        self._replicas = [_Replica(db) for db in replicas]
        self._healthy: tuple[_Replica, ...] = ()
        self._next = 0
        self._max_lag_s = max_lag_s
        self._probe_interval_s = probe_interval_s
        # (loop time, primary WAL write position), oldest first.
        self._samples: deque[tuple[float, int]] = deque()
        self._probe_task: asyncio.Task[None] | None = None
        #: ``db.replica``: reads that need no particular position.
        self.replica = ReplicaExecutor(self, 0)

    def pick(self, lsn: int) -> Database:
        """A healthy replica that replayed ``lsn`` (round robin), else the primary's read pool."""
        healthy = self._healthy
        count = len(healthy)
        for offset in range(count):
            replica = healthy[(self._next + offset) % count]
            if replica.replay_lsn >= lsn:
                self._next = (self._next + offset + 1) % count
                return replica.db
        return self.fallback

    def mark_down(self, db: Database, error: BaseException) -> None:
        """Skip ``db`` until the next probe finds it healthy: a read on it just broke."""
        for replica in self._replicas:
            if replica.db is db and replica in self._healthy:
                replica.status = ReplicaStatus(
                    replica.status.where, False, None, None, None, f"down: {error}"
                )
                self._publish()
                _log.warning("replica %s: %s; reads go elsewhere", replica.status.where, error)

    def statuses(self) -> tuple[ReplicaStatus, ...]:
        return tuple(replica.status for replica in self._replicas)

    def _publish(self) -> None:
        self._healthy = tuple(r for r in self._replicas if r.status.healthy)

    # -- the probe -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._replicas and self._probe_task is None:
            self._probe_task = asyncio.get_running_loop().create_task(self._probe_forever())

    async def close(self) -> None:
        task, self._probe_task = self._probe_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for replica in self._replicas:
            await replica.db.close()
        await self.fallback.close()

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self._probe_interval_s)
            try:
                await self.probe()
            except Exception:  # never let the probe die: routing would freeze in its last state
                _log.exception("replica probe failed")

    async def probe(self) -> None:
        """Measure every replica once and publish which ones reads may use."""
        loop = asyncio.get_running_loop()
        limit_s = max(1.0, self._probe_interval_s)
        sampled_at = loop.time()
        try:
            async with asyncio.timeout(limit_s):
                primary_lsn = parse_lsn(await self._primary.fetchval(_PRIMARY_LSN_SQL))
        except Exception as exc:  # its own callers see the primary's errors
            # Lag cannot be measured; replicas keep their state (reads on them still work).
            _log.debug("replica probe: primary position unavailable: %s", exc)
            return
        samples = self._samples
        samples.append((sampled_at, primary_lsn))
        # Keep the newest sample older than the bound: enough to tell "lags more than max".
        while len(samples) > 1 and samples[1][0] <= sampled_at - self._max_lag_s:
            samples.popleft()
        await asyncio.gather(*(self._probe_one(r, primary_lsn, limit_s) for r in self._replicas))

    async def _probe_one(self, replica: _Replica, primary_lsn: int, limit_s: float) -> None:
        where = replica.status.where
        try:
            async with asyncio.timeout(limit_s):
                row = await replica.db.fetchrow(_REPLICA_SQL)
        except Exception as exc:  # a failure only takes the replica out of use
            self._set(replica, ReplicaStatus(where, False, None, None, None, f"down: {exc!r}"))
            return
        assert row is not None
        in_recovery, replay_text = row
        if not in_recovery or replay_text is None:
            self._set(replica, ReplicaStatus(where, False, None, None, None, "not a standby"))
            return
        replay_lsn = parse_lsn(replay_text)
        lag_s = self._lag_s(replay_lsn)
        lag_bytes = max(0, primary_lsn - replay_lsn)
        reason = "" if lag_s <= self._max_lag_s else f"lagging {lag_s:.1f} s"
        replica.replay_lsn = replay_lsn
        self._set(replica, ReplicaStatus(where, not reason, replay_lsn, lag_bytes, lag_s, reason))

    def _lag_s(self, replay_lsn: int) -> float:
        """Time since the newest primary sample the replica has replayed up to (0 if all)."""
        now = asyncio.get_running_loop().time()
        for sampled_at, lsn in reversed(self._samples):
            if replay_lsn >= lsn:
                return 0.0 if sampled_at == self._samples[-1][0] else now - sampled_at
        return now - self._samples[0][0]  # behind every sample kept: at least this much

    def _set(self, replica: _Replica, status: ReplicaStatus) -> None:
        if status.healthy != replica.status.healthy:
            if status.healthy:
                _log.info("replica %s is healthy: reads use it again", status.where)
            else:
                _log.warning("replica %s skipped: %s", status.where, status.reason)
        replica.status = status
        self._publish()  # routing follows each status as soon as it is known


class ReplicaExecutor(ExecutorMethods):
    """The executor surface for reads: a healthy replica that replayed ``lsn``, else the primary.

    Each statement is routed on its own. Writes fail with ``ReadOnly`` wherever they land.
    """

    __slots__ = ("_lsn", "_router")

    def __init__(self, router: Router, lsn: int) -> None:
        self._router = router
        self._lsn = lsn

    def __repr__(self) -> str:
        return f"<etlstore.ReplicaExecutor at_lsn={self._lsn}>"

    async def _run(self, sql: str, call: Callable[[Connection], Awaitable[_T]]) -> _T:
        router = self._router
        target = router.pick(self._lsn)
        try:
            return await target._run(sql, call)
        except asyncpg.ReadOnlySQLTransactionError as exc:
            raise _read_only(sql) from exc
        except (Unavailable, OutcomeUnknown) as exc:
            if target is router.fallback:
                raise
            # A standby commits nothing: running the statement on the primary is safe.
            router.mark_down(target, exc)
        try:
            return await router.fallback._run(sql, call)
        except asyncpg.ReadOnlySQLTransactionError as exc:
            raise _read_only(sql) from exc


def _read_only(sql: str) -> ReadOnly:
    name = query_name(sql)
    return ReadOnly(
        f"query {name}: a write was sent through db.replica, which is read-only; use db",
        query=name,
        sqlstate="25006",
    )
