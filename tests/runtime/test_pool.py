"""The checkout: one statement per read, nothing left behind, bad connections dropped."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

import etlstore
from tests.runtime.conftest import backends, wait_until


async def _statements_counted(admin: asyncpg.Connection, dsn: str) -> int:
    database = dsn.rsplit("/", 1)[1]
    count = await admin.fetchval(
        "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s"
        " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
        database,
    )
    return int(count)


async def _reset_statements(admin: asyncpg.Connection, dsn: str) -> None:
    database = dsn.rsplit("/", 1)[1]
    await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    await admin.execute(
        "SELECT pg_stat_statements_reset(0, d.oid, 0) FROM pg_database d WHERE datname = $1",
        database,
    )


async def test_each_read_through_the_pool_is_exactly_one_statement(
    db: etlstore.Database, admin: asyncpg.Connection, runtime_dsn: str
) -> None:
    await db.execute("CREATE TABLE IF NOT EXISTS counted (id int PRIMARY KEY, name text)")
    await db.execute("INSERT INTO counted VALUES (1, 'a') ON CONFLICT DO NOTHING")
    get = "-- get_counted (sql/counted.sql:1)\nSELECT id, name FROM counted WHERE id = $1"
    await db.fetchrow(get, 1)  # prepares the statement on the connection
    await _reset_statements(admin, runtime_dsn)
    for _ in range(20):
        assert await db.fetchrow(get, 1) is not None
    assert await _statements_counted(admin, runtime_dsn) == 20


async def test_a_transaction_costs_its_statements_plus_begin_and_commit(
    db: etlstore.Database, admin: asyncpg.Connection, runtime_dsn: str
) -> None:
    await db.execute("CREATE TABLE IF NOT EXISTS counted (id int PRIMARY KEY, name text)")
    await _reset_statements(admin, runtime_dsn)
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO counted VALUES (2, 'b') ON CONFLICT DO NOTHING")
        await tx.fetchval("SELECT count(*) FROM counted")
        await tx.execute("DELETE FROM counted WHERE id = 2")
    assert await _statements_counted(admin, runtime_dsn) == 3 + 2


async def test_cancelled_read_leaves_the_pool_usable_and_nothing_behind(
    db: etlstore.Database, admin: asyncpg.Connection, runtime_dsn: str
) -> None:
    slow = asyncio.create_task(db.fetchval("-- sleepy (t)\nSELECT pg_sleep(30)"))

    async def statement_running() -> bool:
        return any(b["state"] == "active" for b in await backends(admin, runtime_dsn))

    assert await wait_until(statement_running)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert [await db.fetchval("SELECT $1::int", i) for i in range(8)] == list(range(8))

    # The cancel request stops the statement on the server, then the connection is dropped.
    async def settled() -> bool:
        states = [b["state"] for b in await backends(admin, runtime_dsn)]
        return "active" not in states and db.stats().pool.in_use == 0

    assert await wait_until(settled)
    states = [b["state"] for b in await backends(admin, runtime_dsn)]
    assert "idle in transaction" not in states
    assert len(states) <= db.stats().pool.max_size
    assert db.stats().pool.in_use == 0


async def test_cancelled_transaction_is_rolled_back_and_its_connection_dropped(
    db: etlstore.Database, admin: asyncpg.Connection, runtime_dsn: str
) -> None:
    await db.execute("CREATE TABLE IF NOT EXISTS cancelled (id int PRIMARY KEY)")
    entered = asyncio.Event()

    async def writer() -> None:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO cancelled VALUES (1)")
            entered.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(writer())
    await entered.wait()
    pid_in_tx = await admin.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE state = 'idle in transaction' AND datname = $1",
        runtime_dsn.rsplit("/", 1)[1],
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await db.fetchval("SELECT count(*) FROM cancelled") == 0

    async def dropped() -> bool:
        return pid_in_tx not in [b["pid"] for b in await backends(admin, runtime_dsn)]

    assert await wait_until(dropped)
    remaining = await backends(admin, runtime_dsn)
    assert pid_in_tx not in [b["pid"] for b in remaining]
    assert "idle in transaction" not in [b["state"] for b in remaining]


async def test_connection_released_inside_a_transaction_is_dropped_not_reused(
    db: etlstore.Database,
) -> None:
    fast = db._fast
    holder = fast.take()
    assert holder is not None
    con = holder._con
    pid = con.get_server_pid()
    await con.execute("BEGIN")
    fast.give(holder, con)
    assert con.is_closed()
    assert await db.fetchval("SELECT pg_backend_pid()") != pid
    idle_in_transaction = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE state = 'idle in transaction' AND datname = current_database()"
    )
    assert idle_in_transaction == 0


async def test_no_session_state_survives_a_transaction(runtime_dsn: str) -> None:
    async with etlstore.connect(runtime_dsn, min_size=1, max_size=1) as single:
        pid = await single.fetchval("SELECT pg_backend_pid()")
        async with single.transaction() as tx:
            await tx.execute("SET LOCAL statement_timeout = '123s'")
            await tx.execute("SET LOCAL TimeZone = 'Europe/Paris'")
            assert await tx.fetchval("SELECT current_setting('statement_timeout')") == "123s"
        row = await single.fetchrow(
            "SELECT pg_backend_pid(), current_setting('statement_timeout'),"
            " current_setting('TimeZone'), pg_current_xact_id_if_assigned() IS NULL"
        )
    assert row is not None
    assert tuple(row) == (pid, "0", "UTC", True)


async def test_connection_is_replaced_after_max_queries(runtime_dsn: str) -> None:
    async with etlstore.connect(runtime_dsn, min_size=1, max_size=1, max_queries=3) as db:
        pids = [await db.fetchval("SELECT pg_backend_pid()") for _ in range(6)]
    assert pids[0] == pids[1] == pids[2]
    assert pids[3] == pids[4] == pids[5]
    assert pids[0] != pids[3]


async def test_inactive_connections_above_the_floor_are_closed(runtime_dsn: str) -> None:
    async with etlstore.connect(
        runtime_dsn, min_size=1, max_size=3, max_inactive_connection_lifetime=0.1
    ) as db:
        await asyncio.gather(*(db.fetchval("SELECT pg_sleep(0.05)") for _ in range(3)))
        assert db.stats().pool.size == 3

        async def shrunk() -> bool:
            return db.stats().pool.size == 1

        assert await wait_until(shrunk)
        assert await db.fetchval("SELECT 1") == 1


async def test_waiters_get_connections_in_turn_when_the_pool_is_exhausted(
    runtime_dsn: str,
) -> None:
    async with etlstore.connect(runtime_dsn, min_size=1, max_size=2) as db:
        results = await asyncio.gather(
            *(db.fetchval("SELECT $1::int FROM pg_sleep(0.01)", i) for i in range(10))
        )
        assert results == list(range(10))
        assert db.stats().pool.waiting == 0
        assert db.stats().pool.size <= 2


async def test_acquire_timeout_raises_unavailable_when_no_connection_frees_up(
    runtime_dsn: str,
) -> None:
    async with etlstore.connect(runtime_dsn, min_size=1, max_size=1, acquire_timeout=0.05) as db:
        async with db.transaction():
            with pytest.raises(etlstore.errors.Unavailable, match="in time"):
                await db.fetchval("SELECT 1")
        assert await db.fetchval("SELECT 1") == 1
