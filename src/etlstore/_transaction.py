"""``async with db.transaction() as tx``: one connection, BEGIN ... COMMIT, rollback otherwise."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import asyncpg

from etlstore._executor import Connection, ExecutorMethods
from etlstore._pool import Holder
from etlstore._translate import cannot_connect, translate

if TYPE_CHECKING:
    from etlstore._database import Database

__all__ = ["Isolation", "Transaction"]

_T = TypeVar("_T")
Isolation = Literal["serializable", "repeatable_read", "read_committed", "read_uncommitted"]

_BEGIN = "-- (begin)\n"
_COMMIT = "-- (commit)\n"


class Transaction(ExecutorMethods):
    """An executor bound to one connection for the span of one transaction.

    Commits when the block ends normally. On any exception it rolls back; on cancellation, or
    when the connection is mid-statement, it does not wait for a ROLLBACK but drops the
    connection, which makes the server roll back. A connection is never returned to the pool
    inside a transaction (see ``FastPool.give``).
    """

    __slots__ = (
        "_con",
        "_db",
        "_deferrable",
        "_failed",
        "_holder",
        "_isolation",
        "_readonly",
        "_xact",
    )

    def __init__(
        self, db: Database, isolation: Isolation | None, readonly: bool, deferrable: bool
    ) -> None:
        self._db = db
        self._isolation = isolation
        self._readonly = readonly
        self._deferrable = deferrable
        self._holder: Holder | None = None
        self._con: Connection | None = None
        self._xact: Any = None
        # The last statement failed on the server: the transaction is aborted unless a later
        # statement (ROLLBACK TO SAVEPOINT) succeeded.
        self._failed = False

    def __repr__(self) -> str:
        state = "active" if self._con is not None else "inactive"
        return f"<etlstore.Transaction {state} isolation={self._isolation or 'default'}>"

    async def __aenter__(self) -> Transaction:
        if self._holder is not None or self._xact is not None:
            raise asyncpg.InterfaceError("a Transaction can be entered only once")
        fast = self._db._fast
        holder = fast.take()
        if holder is None:
            try:
                holder = await fast.take_waiting(self._db._acquire_timeout)
            except BaseException as exc:
                error = cannot_connect(exc)
                if error is None:
                    raise
                raise error from exc
        con: Connection = holder._con
        xact = con.transaction(
            isolation=self._isolation, readonly=self._readonly, deferrable=self._deferrable
        )
        self._xact = xact
        try:
            await self._timed(_BEGIN, xact.start, may_have_committed=False)
        except BaseException:
            fast.give(holder, con)
            raise
        self._holder = holder
        self._con = con
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        holder, self._holder, con, self._con = self._holder, None, self._con, None
        if holder is None or con is None:
            return
        try:
            if exc is None and self._failed:
                await self._roll_back()
                # COMMIT would answer ROLLBACK without an error: the writes would vanish silently.
                raise asyncpg.InFailedSQLTransactionError(
                    "the transaction was rolled back: a statement in it failed and the block "
                    "caught the error; let it propagate, or use a savepoint"
                )
            if exc is None:
                await self._timed(_COMMIT, self._xact.commit, may_have_committed=True)
            elif not isinstance(exc, asyncio.CancelledError) and _can_roll_back(con):
                await self._roll_back()
        finally:
            # Still inside the transaction if anything above failed: give() drops it then.
            self._db._fast.give(holder, con)

    async def _roll_back(self) -> None:
        # The block's own exception is what matters; if ROLLBACK fails the connection is
        # still in the transaction, and dropped on release.
        with contextlib.suppress(Exception):
            await self._xact.rollback()

    async def _timed(
        self, sql: str, call: Callable[[], Awaitable[None]], *, may_have_committed: bool
    ) -> None:
        start = perf_counter()
        try:
            await call()
        except BaseException as exc:
            error = await translate(
                exc, sql, may_have_committed=may_have_committed, lookup=self._db._constraint_of
            )
            self._db._observer.record(sql, perf_counter() - start, error or exc)
            if error is None:
                raise
            raise error from exc
        self._db._observer.record(sql, perf_counter() - start, None)

    async def _run(self, sql: str, call: Callable[[Connection], Awaitable[_T]]) -> _T:
        con = self._con
        if con is None:
            raise asyncpg.InterfaceError("the transaction is not active (use `async with`)")
        start = perf_counter()
        try:
            result = await call(con)
        except BaseException as exc:
            duration = perf_counter() - start
            self._failed = isinstance(exc, asyncpg.PostgresError)
            # Inside a transaction nothing has committed yet, whatever happened.
            error = await translate(
                exc, sql, may_have_committed=False, lookup=self._db._constraint_of
            )
            self._db._observer.record(sql, duration, error or exc)
            if error is None:
                raise
            raise error from exc
        self._failed = False
        self._db._observer.record(sql, perf_counter() - start, None)
        return result


def _can_roll_back(con: Connection) -> bool:
    protocol: Any = con._protocol  # type: ignore[attr-defined]
    return not con.is_closed() and not protocol._is_cancelling()
