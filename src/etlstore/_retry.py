"""Run a whole transaction again when it lost a serialization race or a deadlock."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar, TypeVarTuple

from etlstore.errors import SerializationConflict

if TYPE_CHECKING:
    from etlstore._database import Database
    from etlstore._transaction import Isolation, Transaction

__all__ = ["backoff_delay", "run_in_transaction"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
_log = logging.getLogger("etlstore.retry")


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
