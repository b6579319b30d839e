"""db.transaction(): commit, rollback, options, and the executor it yields."""

from __future__ import annotations

import contextlib

import asyncpg
import pytest

import etlstore


@pytest.fixture
async def ledger(db: etlstore.Database) -> etlstore.Database:
    await db.execute("CREATE TABLE IF NOT EXISTS ledger (id int PRIMARY KEY, note text)")
    await db.execute("TRUNCATE ledger")
    return db


async def test_block_that_ends_normally_commits(ledger: etlstore.Database) -> None:
    async with ledger.transaction() as tx:
        await tx.execute("INSERT INTO ledger VALUES (1, 'a')")
        await tx.executemany("INSERT INTO ledger VALUES ($1, $2)", [(2, "b"), (3, "c")])
        assert await tx.fetchval("SELECT count(*) FROM ledger") == 3
    assert await ledger.fetchval("SELECT count(*) FROM ledger") == 3


async def test_block_that_raises_rolls_back_and_keeps_the_connection(
    ledger: etlstore.Database,
) -> None:
    pids: list[int] = []

    async def write_then_fail() -> None:
        async with ledger.transaction() as tx:
            await tx.execute("INSERT INTO ledger VALUES (1, 'a')")
            pids.append(await tx.fetchval("SELECT pg_backend_pid()"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await write_then_fail()
    assert await ledger.fetchval("SELECT count(*) FROM ledger") == 0
    assert await ledger.fetchval("SELECT pg_backend_pid()") == pids[0]


async def test_block_after_a_failed_statement_rolls_back(ledger: etlstore.Database) -> None:
    async def write_then_fail() -> None:
        async with ledger.transaction() as tx:
            await tx.execute("INSERT INTO ledger VALUES (1, 'a')")
            await tx.execute("SELECT * FROM no_such_table")

    with pytest.raises(asyncpg.UndefinedTableError):
        await write_then_fail()
    assert await ledger.fetchval("SELECT count(*) FROM ledger") == 0


async def test_isolation_readonly_and_deferrable_reach_the_server(
    ledger: etlstore.Database,
) -> None:
    async with ledger.transaction(isolation="serializable", readonly=True, deferrable=True) as tx:
        row = await tx.fetchrow(
            "SELECT current_setting('transaction_isolation'),"
            " current_setting('transaction_read_only'),"
            " current_setting('transaction_deferrable')"
        )
        assert row is not None
        assert tuple(row) == ("serializable", "on", "on")


async def test_readonly_transaction_refuses_writes(ledger: etlstore.Database) -> None:
    async def write_in_read_only() -> None:
        async with ledger.transaction(readonly=True) as tx:
            await tx.execute("INSERT INTO ledger VALUES (1, 'a')")

    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await write_in_read_only()


async def test_default_isolation_is_the_servers(ledger: etlstore.Database) -> None:
    async with ledger.transaction() as tx:
        assert await tx.fetchval("SHOW transaction_isolation") == "read committed"


async def test_executor_is_unusable_after_the_block(ledger: etlstore.Database) -> None:
    async with ledger.transaction() as tx:
        await tx.fetchval("SELECT 1")
    with pytest.raises(asyncpg.InterfaceError, match="not active"):
        await tx.fetchval("SELECT 1")


async def test_copy_records_inside_a_transaction_is_part_of_it(
    ledger: etlstore.Database,
) -> None:
    async def copy_then_fail() -> None:
        async with ledger.transaction() as tx:
            assert await tx.copy_records_to_table("ledger", records=[(1, "a")]) == "COPY 1"
            raise RuntimeError

    with pytest.raises(RuntimeError):
        await copy_then_fail()
    assert await ledger.fetchval("SELECT count(*) FROM ledger") == 0


async def test_statements_in_a_transaction_are_counted_per_name(
    ledger: etlstore.Database,
) -> None:
    async with ledger.transaction() as tx:
        await tx.fetch("-- list_ledger (sql/ledger.sql:1)\nSELECT id FROM ledger")
    queries = ledger.stats().queries
    assert queries["list_ledger"].calls == 1
    assert queries["(begin)"].calls == queries["(commit)"].calls == 1


async def test_block_that_swallowed_a_failed_statement_raises_instead_of_committing(
    ledger: etlstore.Database,
) -> None:
    async def swallow() -> None:
        async with ledger.transaction() as tx:
            await tx.execute("INSERT INTO ledger VALUES (1, 'a')")
            with contextlib.suppress(asyncpg.UndefinedTableError):
                await tx.execute("SELECT * FROM no_such_table")

    with pytest.raises(asyncpg.InFailedSQLTransactionError, match="rolled back"):
        await swallow()
    assert await ledger.fetchval("SELECT count(*) FROM ledger") == 0


async def test_savepoint_recovery_lets_the_transaction_commit(ledger: etlstore.Database) -> None:
    async with ledger.transaction() as tx:
        await tx.execute("INSERT INTO ledger VALUES (1, 'a')")
        await tx.execute("SAVEPOINT before_risk")
        with contextlib.suppress(asyncpg.UndefinedTableError):
            await tx.execute("SELECT * FROM no_such_table")
        await tx.execute("ROLLBACK TO SAVEPOINT before_risk")
    assert await ledger.fetchval("SELECT count(*) FROM ledger") == 1
