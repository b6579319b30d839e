"""A server that is down, or frozen: calls fail within their timeouts, then service resumes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

import etlstore
from etlstore.errors import QueryTimeout, Unavailable
from tests.faults.conftest import Cluster

_CALLERS = 4
_ACQUIRE_TIMEOUT_S = 0.25
_COMMAND_TIMEOUT_S = 0.5
# The event loop of a loaded two-core machine may run a timer late by this much.
_SCHEDULING_SLACK_S = 0.05


@dataclass(frozen=True)
class Call:
    started: float
    ended: float
    error: BaseException | None

    @property
    def duration_s(self) -> float:
        return self.ended - self.started


async def _probe(db: etlstore.Database, n: int) -> None:
    if n % 2:
        await db.fetchval("SELECT 1")
    else:
        async with db.transaction() as tx:
            await tx.fetchval("SELECT 1")


async def _call_until(db: etlstore.Database, done: Callable[[], bool], calls: list[Call]) -> None:
    loop = asyncio.get_running_loop()
    n = 0
    while not done():
        n += 1
        started = loop.time()
        try:
            await _probe(db, n)
        except Exception as exc:
            calls.append(Call(started, loop.time(), exc))
        else:
            calls.append(Call(started, loop.time(), None))
        await asyncio.sleep(0.01)


async def _with_callers(
    db: etlstore.Database, fault: Callable[[list[Call]], Awaitable[float]]
) -> tuple[list[Call], float]:
    """Callers probe ``db`` until ``fault`` returns when service came back and a success since."""
    calls: list[Call] = []
    back_at: list[float] = []

    def done() -> bool:
        return bool(back_at) and any(c.error is None and c.started >= back_at[0] for c in calls)

    async def run_fault() -> None:
        back_at.append(await fault(calls))

    async with asyncio.TaskGroup() as group:
        for _ in range(_CALLERS):
            group.create_task(_call_until(db, done, calls))
        group.create_task(run_fault())
    return calls, back_at[0]


def _first_success_after(calls: list[Call], moment: float) -> float:
    return min(c.ended for c in calls if c.error is None and c.started >= moment) - moment


@pytest.mark.slow
async def test_calls_fail_fast_with_unavailable_while_the_server_is_down_then_resume(
    cluster: Cluster,
) -> None:
    async with etlstore.connect(
        cluster.dsn,
        min_size=2,
        max_size=2 * _CALLERS,  # callers never wait for a free connection: they fail at once
        connect_timeout=0.5,
        acquire_timeout=_ACQUIRE_TIMEOUT_S,
        command_timeout=_COMMAND_TIMEOUT_S,
        slow_query_s=None,
    ) as db:
        loop = asyncio.get_running_loop()
        window: list[float] = []

        async def outage(calls: list[Call]) -> float:
            await asyncio.sleep(0.2)
            await asyncio.to_thread(cluster.stop)
            window.append(loop.time())
            await asyncio.sleep(5.0)
            window.append(loop.time())
            await asyncio.to_thread(cluster.start)
            return loop.time()

        calls, up_at = await _with_callers(db, outage)
    down = [c for c in calls if window[0] <= c.started and c.ended <= window[1]]
    failures = [c for c in calls if c.error is not None]
    slowest = max(c.duration_s for c in failures)
    resumed_s = _first_success_after(calls, up_at)
    print(
        f"\nfault 4 (server down 5 s): {len(down):,} calls while down, "
        f"{sum(isinstance(c.error, Unavailable) for c in down):,} Unavailable, slowest failure "
        f"{slowest * 1000:.0f} ms (bound {(_ACQUIRE_TIMEOUT_S + 0.05) * 1000:.0f} ms); service "
        f"resumed {resumed_s:.2f} s after the server"
    )
    assert down
    assert all(isinstance(c.error, Unavailable) for c in down)
    assert all(isinstance(c.error, Unavailable) for c in failures if c.started >= window[0])
    assert slowest <= _ACQUIRE_TIMEOUT_S + 0.05
    assert resumed_s <= 1.0


async def test_calls_on_a_frozen_server_end_within_their_timeouts_and_succeed_after_thaw(
    cluster: Cluster,
) -> None:
    async with etlstore.connect(
        cluster.dsn,
        min_size=_CALLERS + 1,
        max_size=_CALLERS + 1,
        connect_timeout=0.5,
        acquire_timeout=_ACQUIRE_TIMEOUT_S,
        command_timeout=_COMMAND_TIMEOUT_S,
        slow_query_s=None,
    ) as db:
        loop = asyncio.get_running_loop()

        async def freeze(calls: list[Call]) -> float:
            await asyncio.sleep(0.2)
            with cluster.frozen():
                await asyncio.sleep(3.0)
            return loop.time()

        calls, thawed_at = await _with_callers(db, freeze)
    bound_s = _ACQUIRE_TIMEOUT_S + _COMMAND_TIMEOUT_S + _SCHEDULING_SLACK_S
    slowest = max(c.duration_s for c in calls)
    failures = [c for c in calls if c.error is not None]
    resumed_s = _first_success_after(calls, thawed_at)
    print(
        f"\nfault 5 (server frozen 3 s): {len(calls):,} calls, {len(failures):,} failed "
        f"({sum(isinstance(c.error, QueryTimeout) for c in failures)} QueryTimeout, "
        f"{sum(isinstance(c.error, Unavailable) for c in failures)} Unavailable), slowest "
        f"{slowest * 1000:.0f} ms (bound {bound_s * 1000:.0f} ms); success {resumed_s:.2f} s "
        "after thaw"
    )
    assert failures
    assert all(isinstance(c.error, QueryTimeout | Unavailable) for c in failures)
    assert slowest <= bound_s
    assert resumed_s <= 0.5
