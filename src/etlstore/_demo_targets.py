"""The latency targets and ratio goals: the one table the demo and ``benchmarks/`` check against.

Targets are p99 latencies of one operation as the caller sees it (checkout, round trips,
decoding), from issue 7. Ratio goals compare etlstore's throughput with another way of doing
the same work on the same server in the same run (higher is better for etlstore).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["OPERATIONS", "RATIO_GOALS", "Operation", "RatioGoal", "verdict"]


@dataclass(frozen=True, slots=True)
class Operation:
    """A benchmarked operation: its key, what it does, and its p99 target (None: none set)."""

    key: str
    title: str
    p99_target_ms: float | None


@dataclass(frozen=True, slots=True)
class RatioGoal:
    """etlstore's ops/s divided by ``baseline``'s must be at least ``at_least``."""

    baseline: str
    title: str
    at_least: float


OPERATIONS: Final = (
    Operation("get", "get pipeline by id", 1.0),
    Operation("list_page", "list a 50-row page of a pipeline's executions", 2.0),
    Operation("create", "create a pipeline (INSERT ... RETURNING)", 2.0),
    Operation("bulk_1000", "bulk insert 1,000 executions (COPY)", 50.0),
    Operation("nested", "load a pipeline with steps and plugins (one round trip)", 2.0),
    Operation("claim", "claim the next execution for a worker (transaction)", 3.0),
    Operation("transaction", "a 3-statement transaction", 3.0),
    Operation("permissions", "effective permissions of a user", None),
    Operation("acquire", "pool acquire and release", 0.2),
)

RATIO_GOALS: Final = (
    RatioGoal("asyncpg_pool", "hand-written asyncpg, same pool settings", 0.95),
    RatioGoal("asyncpg_held", "hand-written asyncpg, one held connection", 0.77),
    RatioGoal("asyncpg_default_pool", "asyncpg with its default pool", 1.9),
    RatioGoal("sqlalchemy_orm", "SQLAlchemy 2 async ORM", 4.0),
    RatioGoal("sqlalchemy_core", "SQLAlchemy 2 Core", 2.5),
)


def verdict(measured: float | None, target: float | None, *, lower_is_better: bool) -> str:
    """``pass``, ``FAIL`` or ``-`` (nothing measured, or no target)."""
    if measured is None or target is None:
        return "-"
    met = measured < target if lower_is_better else measured >= target
    return "pass" if met else "FAIL"
