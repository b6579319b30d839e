"""The timing loop: every implementation, round-robin, in one event loop, timed per call.

Why not ``benchmark()`` per test: pytest-benchmark times one function at a time, so the
implementations would run one block after another and any drift of the machine (another
process, a checkpoint, autovacuum, CPU frequency) would land on one of them only. Here each
round runs a batch of every implementation, in an order rotated per round, so drift hits all
alike; ``bench_*.py`` then replay the recorded latencies into pytest-benchmark (see
``replay``) for its JSON and its table.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import Final

from rich.progress import Progress

from benchmarks._alternatives import POOL_SIZE, Implementation

__all__ = ["LOOPS", "MODES", "Cell", "Plan", "measure_operation", "new_loop", "time_batch"]

LOOPS: Final = ("asyncio", *(("uvloop",) if importlib.util.find_spec("uvloop") else ()))
#: sequential: one task; concurrent: POOL_SIZE tasks sharing the implementation.
MODES: Final = ("sequential", f"concurrent_{POOL_SIZE}")


@dataclass
class Cell:
    """The calls of one implementation for one operation, event loop and mode."""

    op: str
    impl: str
    loop: str
    mode: str
    latencies_s: list[float] = field(default_factory=list)
    calls: int = 0
    wall_s: float = 0.0

    @property
    def ops_per_s(self) -> float:
        return self.calls / self.wall_s if self.wall_s else 0.0


@dataclass(frozen=True)
class Plan:
    """How much to measure: rounds of batches (calls per implementation per round)."""

    rounds: int
    batch: int
    slow_batch: int  # for the bulk insert, 30x slower than the rest


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def time_batch(
    run: Callable[[int, int], Awaitable[object]], cell: Cell, calls: int, tasks: int, first: int
) -> None:
    """``calls`` calls of ``run(i, task)`` on ``tasks`` tasks at once, timed into ``cell``."""
    latencies = cell.latencies_s

    async def one_task(task: int, count: int) -> None:
        for n in range(count):
            start = perf_counter()
            await run(first + n * tasks + task, task)
            latencies.append(perf_counter() - start)

    start = perf_counter()
    if tasks == 1:
        await one_task(0, calls)
    else:
        await asyncio.gather(*(one_task(t, calls // tasks) for t in range(tasks)))
    cell.wall_s += perf_counter() - start
    cell.calls += calls if tasks == 1 else (calls // tasks) * tasks


async def interleave(
    runs: dict[str, Callable[[int, int], Awaitable[object]]],
    cell: Callable[[str], Cell],
    *,
    rounds: int,
    calls: int,
    tasks: int,
) -> None:
    """A warm-up batch per target, then ``rounds`` batches each, the order rotated per round.

    Rotating spreads the machine's drift (other load, caches warming) over every target alike.
    ``runs`` maps a target to ``run(i, task)``; ``cell(target)`` is where its timings go.
    """
    names = list(runs)
    for name in names:  # connections, prepared statements, caches
        await time_batch(runs[name], Cell("warm-up", name, "", ""), calls, tasks, 0)
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            await time_batch(runs[name], cell(name), calls, tasks, (round_number + 1) * calls)


async def measure_operation(
    op: str,
    impls: Sequence[Implementation],
    *,
    loop: str,
    plan: Plan,
    after_batch: Callable[[], Awaitable[object]],
    progress: Progress | None = None,
) -> list[Cell]:
    """Both modes of one operation for every implementation, interleaved round by round.

    ``after_batch`` runs untimed after every batch (it puts the data back: requeue claimed
    executions, delete bulk-inserted rows) so that each batch finds the same state.
    """
    batch = plan.slow_batch if op == "bulk_1000" else plan.batch
    cells: list[Cell] = []
    for mode in MODES:
        tasks = 1 if mode == "sequential" else POOL_SIZE
        calls = batch if tasks == 1 else max(tasks, batch // tasks * tasks)
        by_impl = {impl.name: Cell(op, impl.name, loop, mode) for impl in impls}
        for impl in impls:  # warm up: connections, prepared statements, caches
            await time_batch(getattr(impl, op), Cell(op, impl.name, loop, mode), calls, tasks, 0)
            await after_batch()
        for round_number in range(plan.rounds):
            shift = round_number % len(impls)
            for impl in [*impls[shift:], *impls[:shift]]:
                first = (round_number + 1) * calls
                await time_batch(getattr(impl, op), by_impl[impl.name], calls, tasks, first)
                await after_batch()
            if progress is not None:
                progress.advance(progress.task_ids[0])
        cells.extend(by_impl.values())
    return cells
