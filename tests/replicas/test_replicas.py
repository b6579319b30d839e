"""Read replicas against a real streaming replica: routing, read-your-writes, lag, loss and return.

Where a read ran is asked of the server itself: ``pg_is_in_recovery()`` is true on the standby
only.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

import etlstore
from etlstore.queries import pipelines
from tests.domain._factories import make_pipeline
from tests.replicas.conftest import Pair, eventually

_ON_STANDBY = "SELECT pg_is_in_recovery()"
_BY_NAME = "SELECT pg_is_in_recovery(), count(*) FROM pipelines WHERE name = $1"


@asynccontextmanager
async def connected(
    pair: Pair, *, max_replica_lag_s: float = 30.0
) -> AsyncIterator[etlstore.Database]:
    async with etlstore.connect(
        pair.primary_dsn,
        max_size=4,
        replicas=[pair.replica_dsn],
        max_replica_lag_s=max_replica_lag_s,
        replica_probe_interval_s=0.05,
    ) as db:
        yield db


async def _seen(executor: etlstore.ReplicaExecutor, name: str) -> tuple[bool, int]:
    """(whether the read ran on the standby, how many pipelines named ``name`` it saw)."""
    row = await executor.fetchrow(_BY_NAME, name)
    assert row is not None
    return row[0], row[1]


async def _delete(db: etlstore.Database, name: str) -> None:
    await db.execute("DELETE FROM pipelines WHERE name = $1", name)


async def test_replica_reads_run_on_the_standby_and_everything_else_on_the_primary(
    pair: Pair,
) -> None:
    async with connected(pair) as db:
        assert [s.healthy for s in db.replica_status()] == [True]
        assert await db.replica.fetchval(_ON_STANDBY) is True
        assert await db.fetchval(_ON_STANDBY) is False
        async with db.transaction() as tx:
            assert await tx.fetchval(_ON_STANDBY) is False


async def test_generated_query_functions_accept_the_replica_executor(pair: Pair) -> None:
    async with connected(pair) as db:
        created = await make_pipeline(db, f"replica-{uuid.uuid4()}")
        try:
            lsn = await db.commit_lsn()
            read = await pipelines.get_pipeline(db.replica_at(lsn), id=created.id)
            assert read == created
        finally:
            await _delete(db, created.name)


@pytest.mark.parametrize("replicas_healthy", [True, False])
async def test_a_write_through_the_replica_executor_is_read_only_wherever_it_lands(
    pair: Pair, replicas_healthy: bool
) -> None:
    name = f"read-only-{uuid.uuid4()}"
    async with connected(pair) as db:
        # lsn far ahead of the replica: the statement runs on the primary's read-only sessions.
        executor = db.replica if replicas_healthy else db.replica_at(2**63)
        with pytest.raises(etlstore.ReadOnly) as raised:
            await pipelines.create_pipeline(
                executor,
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
        assert raised.value.sqlstate == "25006"
        assert raised.value.query == "create_pipeline"
        assert await db.fetchval("SELECT count(*) FROM pipelines WHERE name = $1", name) == 0


async def test_read_at_commit_lsn_uses_a_replica_that_replayed_the_write(pair: Pair) -> None:
    name = f"ryw-{uuid.uuid4()}"
    async with connected(pair) as db:
        await make_pipeline(db, name)
        try:
            lsn = await db.commit_lsn()

            async def replica_replayed_the_write() -> bool:
                return (db.replica_status()[0].replay_lsn or 0) >= lsn

            await eventually(replica_replayed_the_write)
            assert await _seen(db.replica_at(lsn), name) == (True, 1)
        finally:
            await _delete(db, name)


async def test_read_at_commit_lsn_falls_back_to_the_primary_while_replay_is_behind(
    pair: Pair,
) -> None:
    name = f"ryw-paused-{uuid.uuid4()}"
    async with connected(pair) as db, pair.replay_paused():
        await make_pipeline(db, name)
        try:
            lsn = await db.commit_lsn()
            assert await _seen(db.replica_at(lsn), name) == (False, 1)
            # Within the lag bound, reads that need no position still use the replica,
            # which does not have the row yet.
            assert await _seen(db.replica, name) == (True, 0)
        finally:
            await _delete(db, name)


async def test_a_replica_lagging_beyond_the_bound_is_skipped_until_it_catches_up(
    pair: Pair,
) -> None:
    name = f"lag-{uuid.uuid4()}"
    async with connected(pair, max_replica_lag_s=0.3) as db:
        assert await db.replica.fetchval(_ON_STANDBY) is True
        try:
            async with pair.replay_paused():
                await make_pipeline(db, name)

                async def marked_lagging() -> bool:
                    return db.replica_status()[0].reason.startswith("lagging")

                await eventually(marked_lagging)
                status = db.replica_status()[0]
                assert not status.healthy
                assert status.lag_bytes is not None
                assert status.lag_bytes > 0
                assert await db.replica.fetchval(_ON_STANDBY) is False

            async def healthy_again() -> bool:
                return db.replica_status()[0].healthy

            await eventually(healthy_again)
            assert await _seen(db.replica, name) == (True, 1)
        finally:
            await _delete(db, name)


async def test_reads_survive_the_loss_of_the_replica_and_use_it_again_when_it_returns(
    pair: Pair,
) -> None:
    async with connected(pair) as db:
        assert await db.replica.fetchval(_ON_STANDBY) is True  # a connection to it is open
        pair.stop_replica()
        try:
            # The first read finds the connection broken before any probe ran: it runs again
            # on the primary, and no error reaches the caller.
            assert await db.replica.fetchval(_ON_STANDBY) is False
            assert db.replica_status()[0].reason.startswith("down")
            for _ in range(20):
                assert await db.replica.fetchval(_ON_STANDBY) is False
        finally:
            pair.start_replica()

        async def used_again() -> bool:
            return bool(await db.replica.fetchval(_ON_STANDBY))

        await eventually(used_again)
        assert db.replica_status()[0].healthy
