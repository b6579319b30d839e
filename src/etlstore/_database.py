"""``Database``: a pool with the executor surface, whose reads cost exactly one round trip.

On release nothing is sent (asyncpg's default pool sends a reset script, a second round trip per
checkout); instead this layer never leaves session state behind (no LISTEN, session advisory
locks, temp tables or session-level SET: transactions use SET LOCAL semantics only) and drops any
connection returned inside a transaction or mid-cancellation (``FastPool.give``). How
connections are set up is in ``_connect``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from types import TracebackType
from typing import Final, TypeVar, TypeVarTuple

import asyncpg

from etlstore._executor import Connection, ExecutorMethods
from etlstore._observability import QueryObserver, QueryStats
from etlstore._pool import FastPool
from etlstore._replicas import COMMIT_LSN_SQL, ReplicaExecutor, ReplicaStatus, Router, parse_lsn
from etlstore._retry import run_idempotent, run_in_transaction
from etlstore._transaction import Isolation, Transaction
from etlstore._translate import (
    CONSTRAINT_COLUMNS_SQL,
    cannot_connect,
    is_out_of_step,
    translate,
)

__all__ = ["Database", "Health", "PoolStats", "Stats"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

_HEALTH_SQL: Final = (
    "-- etlstore_health (etlstore runtime)\nSELECT current_setting('server_version')"
)
_MAX_CACHED_CONSTRAINTS = 1_000


@dataclass(frozen=True, slots=True)
class PoolStats:
    """Connections of the pool right now."""

    size: int
    idle: int
    in_use: int
    waiting: int
    min_size: int
    max_size: int


@dataclass(frozen=True, slots=True)
class Stats:
    """``Database.stats()``: the pool now and per-query counters since the database opened."""

    pool: PoolStats
    queries: dict[str, QueryStats]


@dataclass(frozen=True, slots=True)
class Health:
    """``Database.health()``: the result of one round trip."""

    server_version: str
    latency_s: float
    pool: PoolStats


class Database(ExecutorMethods):
    """A connection pool with the executor surface; pass it to generated query functions.

    Each call checks a connection out for one statement (autocommit), so a read is exactly one
    round trip. Use ``transaction()`` for several statements that must see or commit together.
    """

    __slots__ = (
        "_acquire_timeout",
        "_constraints",
        "_fast",
        "_observer",
        "_pool",
        "_retry_rng",
        "_router",
        "_where",
    )

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        where: str,
        observer: QueryObserver,
        acquire_timeout: float | None,
        max_inactive_connection_lifetime: float,
    ) -> None:
        self._pool = pool
        self._fast = FastPool(
            pool, max_inactive_connection_lifetime=max_inactive_connection_lifetime
        )
        self._observer = observer
        self._acquire_timeout = acquire_timeout
        self._where = where
        self._constraints: dict[tuple[str, str, str], tuple[str, str, tuple[str, ...]]] = {}
        self._retry_rng = random.Random()
        #: Set by ``connect()`` on the primary's Database: where ``replica`` reads go.
        self._router: Router | None = None

    def __repr__(self) -> str:
        return f"<etlstore.Database {self._where}>"

    @property
    def pool(self) -> asyncpg.Pool:
        """The asyncpg pool underneath (it sends no reset query on release: see module doc)."""
        return self._pool

    async def close(self) -> None:
        """Wait for checked-out connections to come back, then close them all."""
        if self._router is not None:
            await self._router.close()
        self._fast.close()
        await self._pool.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _run(self, sql: str, call: Callable[[Connection], Awaitable[_T]]) -> _T:
        # The hot path of every read: keep it to a synchronous take/give and two clock reads.
        fast = self._fast
        holder = fast.take()
        if holder is None:
            try:
                holder = await fast.take_waiting(self._acquire_timeout)
            except BaseException as exc:
                error = cannot_connect(exc)
                if error is None:
                    raise
                raise error from exc
        con = holder._con
        start = perf_counter()
        try:
            result = await call(con)
        except BaseException as exc:
            duration = perf_counter() - start
            if is_out_of_step(exc):
                con.terminate()  # broken, though its close is not seen yet: never reuse it
            fast.give(holder, con)
            # Autocommit: a statement sent on a connection that was then lost may have committed.
            error = await translate(exc, sql, may_have_committed=True, lookup=self._constraint_of)
            self._observer.record(sql, duration, error or exc)
            if error is None:
                raise
            raise error from exc
        duration = perf_counter() - start
        fast.give(holder, con)
        self._observer.record(sql, duration, None)
        return result

    async def _constraint_of(
        self, schema: str, table: str, constraint: str
    ) -> tuple[str, str, tuple[str, ...]] | None:
        """A constraint's table, name and columns as declared (cached); None if none is free."""
        key = (schema, table, constraint)
        cached = self._constraints.get(key)
        if cached is not None:
            return cached
        fast = self._fast
        holder = fast.take()
        if holder is None:
            if not fast.has_free_holder():
                return None  # never wait for a busy pool while raising: its connections may be ours
            try:
                holder = await fast.take_waiting(self._acquire_timeout)  # opens a connection
            except Exception:
                return None
        con = holder._con
        try:
            row = await con.fetchrow(CONSTRAINT_COLUMNS_SQL, schema, table, constraint)
        except Exception:
            return None
        finally:
            fast.give(holder, con)
        if row is None:
            return None
        found = (str(row[0]), str(row[1]), tuple(row[2]))
        if len(self._constraints) < _MAX_CACHED_CONSTRAINTS:
            self._constraints[key] = found
        return found

    def transaction(
        self,
        *,
        isolation: Isolation | None = None,
        readonly: bool = False,
        deferrable: bool = False,
    ) -> Transaction:
        """``async with db.transaction() as tx:`` an executor on one connection in one transaction.

        ``isolation`` None means the server's default (read committed unless configured).
        """
        return Transaction(self, isolation, readonly, deferrable)

    async def run_in_transaction(
        self,
        fn: Callable[[Transaction, *_Ts], Awaitable[_T]],
        *args: *_Ts,
        attempts: int = 5,
        isolation: Isolation | None = "serializable",
        readonly: bool = False,
        deferrable: bool = False,
        base_delay_s: float = 0.005,
        max_delay_s: float = 0.5,
    ) -> _T:
        """``await fn(tx, *args)`` in a transaction, run again on a serialization failure.

        Retried only on SerializationConflict (40001 serialization_failure, 40P01
        deadlock_detected), at most ``attempts`` runs in all, sleeping a jittered exponential
        backoff between them. Everything else propagates at once: constraint violations,
        timeouts, programming errors, and OutcomeUnknown (the COMMIT's fate is unknown: see
        docs/runtime.md for the idempotency-key pattern). ``fn`` must have no effects outside the
        transaction, since it may run more than once.
        """
        return await run_in_transaction(
            self,
            fn,
            args,
            attempts=attempts,
            isolation=isolation,
            readonly=readonly,
            deferrable=deferrable,
            base_delay_s=base_delay_s,
            max_delay_s=max_delay_s,
            rng=self._retry_rng,
        )

    async def run_idempotent(
        self,
        fn: Callable[[Database, *_Ts], Awaitable[_T]],
        *args: *_Ts,
        deadline_s: float = 10.0,
        base_delay_s: float = 0.01,
        max_delay_s: float = 0.25,
    ) -> _T:
        """``await fn(self, *args)`` for a retry-safe ``fn``, run again until ``deadline_s``.

        Retry-safe: a read, or a write made idempotent by a key chosen before the first call
        (``INSERT ... ON CONFLICT DO NOTHING``, then get by key). Retried on Unavailable,
        OutcomeUnknown and SerializationConflict with a jittered exponential backoff; no run
        starts later than ``deadline_s`` after the call, the last error is raised then. Never
        pass a write that is not idempotent: after OutcomeUnknown it may apply twice.
        """
        return await run_idempotent(
            self,
            fn,
            args,
            deadline_s=deadline_s,
            base_delay_s=base_delay_s,
            max_delay_s=max_delay_s,
            rng=self._retry_rng,
        )

    @property
    def replica(self) -> ReplicaExecutor:
        """An executor for reads: a healthy replica, else read-only sessions on the primary."""
        return self._replicas().replica

    def replica_at(self, lsn: int) -> ReplicaExecutor:
        """Like ``replica``, but only replicas known to have replayed ``lsn`` (``commit_lsn()``)."""
        return ReplicaExecutor(self._replicas(), lsn)

    async def commit_lsn(self) -> int:
        """The primary's WAL position now: at least the end of every commit that returned.

        One round trip; pass it to ``replica_at`` to read your own writes from a replica.
        """
        return parse_lsn(await self.fetchval(COMMIT_LSN_SQL))

    def replica_status(self) -> tuple[ReplicaStatus, ...]:
        """Each replica as the last probe saw it: healthy or why it is skipped, its lag."""
        return self._replicas().statuses()

    def _replicas(self) -> Router:
        if self._router is None:
            raise TypeError(f"{self!r} has no replica routing: open it with etlstore.connect()")
        return self._router

    def _pool_stats(self) -> PoolStats:
        size, idle, in_use, waiting = self._fast.stats()
        return PoolStats(
            size=size,
            idle=idle,
            in_use=in_use,
            waiting=waiting,
            min_size=self._pool.get_min_size(),
            max_size=self._pool.get_max_size(),
        )

    def stats(self) -> Stats:
        """Pool occupancy now, and calls/errors/total/max time per query name so far."""
        return Stats(pool=self._pool_stats(), queries=self._observer.snapshot())

    async def health(self) -> Health:
        """One round trip to the server: its version, the latency, and the pool's state."""
        start = perf_counter()
        version = await self.fetchval(_HEALTH_SQL)
        return Health(
            server_version=str(version),
            latency_s=perf_counter() - start,
            pool=self._pool_stats(),
        )
