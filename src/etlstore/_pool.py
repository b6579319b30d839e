"""A cheap checkout over asyncpg's pool, keeping its semantics.

``asyncpg.Pool.acquire`` + ``release`` costs about as much as a whole get-by-id round trip:
an ``async with`` context object, ``compat.wait_for`` when a timeout is given, a
``PoolConnectionProxy`` (a metaclass-wrapped forwarder on every method call), ``queue.get()`` as a
coroutine, a cancelled and a new inactivity timer per checkout (asyncio keeps cancelled timers in
its heap), and on release ``asyncio.shield`` (a new Task: an extra event loop iteration) around a
reset that is a second round trip by default.

Here, when a connected holder is free, the checkout is synchronous: it pops the holder from
asyncpg's own queue and marks it in use exactly as ``PoolConnectionHolder.acquire`` does, without
the proxy. The return is synchronous too: a healthy connection goes back through the holder's own
``_release`` (wakes waiters). One left in a bad state is dropped, never reset: inside a
transaction or closed, terminated at once; after a cancelled statement, terminated once asyncpg's
cancel request has reached the server. asyncpg reconnects a dropped holder on demand. One due for
replacement (``max_queries``, expired generation) is closed gracefully in the background.
The inactive-connection lifetime is enforced by one periodic sweep instead of a timer per
checkout (asyncpg's own timers are disabled: the pool is created with a lifetime of 0). Everything
else (connecting, waiting for a free connection, timeouts, connection loss, the min-size floor)
stays asyncpg's code.

What a checkout still costs: one ``Future`` (``holder._in_use``, awaited by ``Pool.close``) and
two queue operations (``get_nowait``/``put_nowait`` on asyncpg's LIFO queue). This relies on
asyncpg internals (``Pool._queue``, ``PoolConnectionHolder``'s fields), pinned by the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import asyncpg

__all__ = ["FastPool", "Holder"]

# asyncpg's PoolConnectionHolder: private, untyped in the stubs.
Holder = Any


class FastPool:
    """Checkout and return of connections of one initialised ``asyncpg.Pool``."""

    __slots__ = (
        "_background",
        "_last_seen",
        "_lifetime_s",
        "_loop",
        "_pool",
        "_queue",
        "_sweep_handle",
        "waiting",
    )

    def __init__(self, pool: asyncpg.Pool, *, max_inactive_connection_lifetime: float) -> None:
        internals: Any = pool
        self._pool: Any = internals
        self._queue: Any = internals._queue
        self._loop = asyncio.get_running_loop()
        self._background: set[asyncio.Task[None]] = set()
        #: Tasks waiting in the slow path for a connection to be returned.
        self.waiting = 0
        self._lifetime_s = max_inactive_connection_lifetime
        # holder -> (its connection's query count, when that count was first seen)
        self._last_seen: dict[Holder, tuple[int, float]] = {}
        self._sweep_handle: asyncio.TimerHandle | None = None
        if self._lifetime_s > 0:
            self._schedule_sweep()

    def take(self) -> Holder | None:
        """A holder with a live connection, now checked out; None if that needs waiting."""
        queue = self._queue
        pool = self._pool
        # Tasks already queued for a connection go first (asyncio.Queue is FIFO among getters).
        if not queue._queue or queue._getters or pool._closing or pool._closed:
            return None
        holder = queue.get_nowait()  # asyncpg's queue prefers holders with a live connection
        con = holder._con
        if (
            con is None
            or con.is_closed()
            or holder._generation != pool._generation
            or holder._setup is not None
        ):
            # Needs (re)connecting or a setup call: asyncpg's own acquire does that.
            queue.put_nowait(holder)
            return None
        holder._in_use = self._loop.create_future()
        return holder

    def has_free_holder(self) -> bool:
        """Whether a checkout would not wait for another task (it may have to connect)."""
        return bool(self._queue._queue) and not self._queue._getters

    async def take_waiting(self, timeout: float | None) -> Holder:  # noqa: ASYNC109
        """asyncpg's own acquire: connects, or waits for a free connection up to ``timeout``."""
        self.waiting += 1
        try:
            proxy: Any = await self._pool._acquire(timeout)
        finally:
            self.waiting -= 1
        return proxy._holder

    def give(self, holder: Holder, con: Any) -> None:
        """Return a holder taken by ``take`` or ``take_waiting`` with connection ``con``.

        Never waits. ``con`` is the connection the caller used: if it closed meanwhile, asyncpg
        already took the holder back and may have handed it, reconnected, to another task.
        """
        if holder._in_use is None or holder._con is not con:
            return
        if con.is_closed():
            con.terminate()  # finishes asyncpg's cleanup: the holder goes back, to reconnect
            return
        protocol = con._protocol
        if protocol._is_cancelling():
            # A statement was cancelled (task cancelled, client timeout): let asyncpg's cancel
            # request reach the server so the statement stops there too, then drop the
            # connection. Its session state is unknown; the holder stays checked out meanwhile.
            self._in_background(self._drop_after_cancellation(con))
            return
        if protocol.is_in_transaction() or con._top_xact is not None or con._aborted:
            # Left inside a transaction: dropped instead of reset (the server rolls it back).
            con.terminate()
            return
        if (
            protocol.queries_count >= holder._max_queries
            or holder._generation != self._pool._generation
        ):
            self._in_background(self._close(con))
            return
        holder._timeout = None
        holder._release()

    def _schedule_sweep(self) -> None:
        self._sweep_handle = self._loop.call_later(self._lifetime_s / 2, self._sweep)

    def _sweep(self) -> None:
        """Close idle connections unused for the inactive lifetime, above the pool's floor.

        A connection's query count is its activity clock: unchanged for ``lifetime`` seconds while
        idle means inactive (closed between 1 and 1.5 lifetimes after its last use, as precise
        as asyncpg's per-checkout timers need to be for this purpose).
        """
        pool = self._pool
        if pool._closing or pool._closed:
            return
        now = self._loop.time()
        last_seen: dict[Holder, tuple[int, float]] = {}
        for holder in pool._holders:
            con = holder._con
            if con is None or con.is_closed():
                continue
            count = con._protocol.queries_count
            seen = self._last_seen.get(holder)
            if seen is None or seen[0] != count or not holder.is_idle():
                last_seen[holder] = (count, now)
            elif now - seen[1] >= self._lifetime_s and pool.get_size() > pool.get_min_size():
                con.terminate()  # idle: nothing to wait for; asyncpg reconnects on demand
            else:
                last_seen[holder] = seen
        self._last_seen = last_seen
        self._schedule_sweep()

    def close(self) -> None:
        """Stop the inactivity sweep (the pool itself is closed by its owner)."""
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None

    def _in_background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _drop_after_cancellation(con: Any) -> None:
        try:
            with contextlib.suppress(Exception):
                await con._protocol._wait_for_cancellation(10.0)
        finally:
            # Cleanup returns the holder to the pool; asyncpg reconnects it on demand.
            con.terminate()

    @staticmethod
    async def _close(con: Any) -> None:
        # Connection.close() aborts the connection when it fails and always ends in asyncpg's
        # cleanup, which returns the holder to the pool; nothing is left to handle here.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await con.close(timeout=10)

    def stats(self) -> tuple[int, int, int, int]:
        """(connections open, of which idle, holders checked out, tasks waiting)."""
        holders: list[Any] = self._pool._holders
        size = sum(h.is_connected() for h in holders)
        idle = sum(h.is_connected() and h.is_idle() for h in holders)
        in_use = sum(not h.is_idle() for h in holders)
        return size, idle, in_use, self.waiting
