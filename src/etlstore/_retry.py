"""Run work again: a transaction that lost a serialization race, or a retry-safe operation."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar, TypeVarTuple

from etlstore.errors import OutcomeUnknown, SerializationConflict, Unavailable

if TYPE_CHECKING:
    from etlstore._database import Database
    from etlstore._transaction import Isolation, Transaction

__all__ = ["RETRY_SAFE_ERRORS", "backoff_delay", "run_idempotent", "run_in_transaction"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
_log = logging.getLogger("etlstore.retry")

#: What ``run_idempotent`` retries: nothing happened (Unavailable), the outcome of an idempotent
#: write is unknown (OutcomeUnknown: running it again is a no-op or repeats a no-op), or a
#: transaction inside it lost a race (SerializationConflict).
RETRY_SAFE_ERRORS: tuple[type[Exception], ...] = (
    Unavailable,
    OutcomeUnknown,
    SerializationConflict,
)


def backoff_delay(attempt: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """ "Full jitter" exponential backoff: uniform in [0, min(cap, base * 2**(attempt-1))].

    Spreading the retries of the transactions that collided is what lets them stop colliding.
    """
    return rng.uniform(0.0, min(cap_s, base_s * 2.0 ** (attempt - 1)))


async def run_in_transaction(
    db: Database,
    fn: Callable[[Transaction, *_Ts], Awaitable[_T]],
    args: tuple[*_Ts],
    *,
    attempts: int,
    isolation: Isolation | None,
    readonly: bool,
    deferrable: bool,
    base_delay_s: float,
    max_delay_s: float,
    rng: random.Random,
) -> _T:
    """``fn(tx, *args)`` in a transaction, retried on SerializationConflict only."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    attempt = 1
    while True:
        try:
            async with db.transaction(
                isolation=isolation, readonly=readonly, deferrable=deferrable
            ) as tx:
                return await fn(tx, *args)
        except SerializationConflict as exc:
            if attempt >= attempts:
                raise
            delay = backoff_delay(attempt, base_s=base_delay_s, cap_s=max_delay_s, rng=rng)
            _log.info(
                "transaction %s: %s (attempt %d of %d), retrying in %.3f s",
                getattr(fn, "__qualname__", "?"),
                exc.sqlstate,
                attempt,
                attempts,
                delay,
            )
            attempt += 1
            await asyncio.sleep(delay)


async def run_idempotent(
    db: Database,
    fn: Callable[[Database, *_Ts], Awaitable[_T]],
    args: tuple[*_Ts],
    *,
    deadline_s: float,
    base_delay_s: float,
    max_delay_s: float,
    rng: random.Random,
) -> _T:
    """``fn(db, *args)``, run again on RETRY_SAFE_ERRORS until ``deadline_s`` has passed.

    No attempt starts after the deadline: the last error is raised instead. An attempt that
    started is bounded by the pool's own timeouts (acquire, connect, command), not cut short.
    """
    if deadline_s < 0:
        raise ValueError(f"deadline_s must not be negative, got {deadline_s}")
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + deadline_s
    attempt = 1
    while True:
        try:
            return await fn(db, *args)
        except RETRY_SAFE_ERRORS as exc:
            delay = backoff_delay(attempt, base_s=base_delay_s, cap_s=max_delay_s, rng=rng)
            if loop.time() + delay > give_up_at:
                raise
            _log.info(
                "retry-safe %s: %s (attempt %d), retrying in %.3f s",
                getattr(fn, "__qualname__", "?"),
                type(exc).__name__,
                attempt,
                delay,
            )
            attempt += 1
            await asyncio.sleep(delay)
