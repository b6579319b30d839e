"""Restarts under a mixed workload: fast (sessions terminated) and crash (immediate mode).

Every operation goes through ``Database.run_idempotent``: callers see no error, no acknowledged
write goes missing, and each write whose outcome was unknown is resolved exactly once by its key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from uuid import UUID

import pytest

import etlstore
from etlstore._migrations import apply_migrations
from etlstore.queries import pipelines
from tests.faults._workload import Figures, run_workload, stored_rows
from tests.faults.conftest import Cluster

_MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
_GAP_BOUND_S = 2.0


@pytest.fixture(scope="module")
def migrated(cluster: Cluster) -> Cluster:
    apply_migrations(cluster.dsn, _MIGRATIONS)
    return cluster


@pytest.fixture
async def db(migrated: Cluster) -> AsyncIterator[etlstore.Database]:
    async with etlstore.connect(
        migrated.dsn,
        min_size=10,
        max_size=30,
        connect_timeout=2.0,
        acquire_timeout=2.0,
        command_timeout=5.0,
        slow_query_s=None,
    ) as database:
        yield database


async def _pipeline(db: etlstore.Database, name: str) -> UUID:
    created = await pipelines.create_pipeline(
        db,
        name=name,
        description="",
        environment_variables={},
        schedule_expression=None,
        timezone="UTC",
        max_concurrent_executions=1,
        timeout_seconds=None,
        retry_attempts=0,
        retry_delay_seconds=0,
        is_paused=False,
    )
    return created.id


async def _run_and_check(db: etlstore.Database, fault: Callable[[], None], label: str) -> Figures:
    """Run the workload around ``fault``; print the figure, then assert what the issue bounds.

    Nothing acknowledged is lost or doubled, no call fails although it committed, every unknown
    outcome is resolved exactly once, and no caller of a retry-safe operation sees an error.
    """
    pipeline_id = await _pipeline(db, label)
    figures = await run_workload(db, pipeline_id, fault)
    stored_events, stored_runs = await stored_rows(db, figures, pipeline_id)
    stored: dict[str, Sequence[object]] = {**stored_events, **stored_runs}
    acked: dict[str, object] = {**figures.acked_events, **figures.acked_runs}
    lost = sum(key not in stored for key in acked)
    duplicates = sum(len(ids) - 1 for ids in stored.values())
    unacked = len(stored.keys() - acked.keys())  # committed, though the call failed
    mismatched = sum(stored[key][0] != value for key, value in acked.items() if key in stored)
    resolved_once = sum(len(stored.get(key, [])) == 1 for key in figures.unknown)
    print(
        f"\n{label}: {figures.ops_per_s:,.0f} ops/s ({figures.ops:,} ops, {len(acked):,} acked "
        f"writes), {lost} lost, {duplicates} duplicates, {len(figures.errors)} errors, "
        f"{figures.lost_reads} reads missing an acked write, {len(figures.unknown)} outcomes "
        f"unknown -> {resolved_once} resolved exactly once by key, serving again after "
        f"{figures.longest_gap_s:.2f} s (longest time without a success)"
    )
    assert figures.errors == []
    assert (lost, figures.lost_reads, duplicates, unacked, mismatched) == (0, 0, 0, 0, 0)
    assert resolved_once == len(figures.unknown)
    assert figures.longest_gap_s < _GAP_BOUND_S
    return figures


async def test_fast_restart_loses_no_acknowledged_write_and_shows_callers_no_error(
    migrated: Cluster, db: etlstore.Database
) -> None:
    await _run_and_check(db, migrated.restart_fast, "fault 1 (fast restart)")


async def test_crash_restart_resolves_every_unknown_outcome_exactly_once_by_its_key(
    migrated: Cluster, db: etlstore.Database
) -> None:
    def crash() -> None:
        migrated.stop("immediate")
        migrated.start()

    figures = await _run_and_check(db, crash, "fault 2 (crash restart)")
    assert figures.unknown  # the slow writers were caught mid-statement by the crash
