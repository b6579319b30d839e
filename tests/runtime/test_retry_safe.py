"""Retry-safe operations: ``Database.run_idempotent``, and statements refused before sending."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

import etlstore
from etlstore._translate import translate
from etlstore.errors import Conflict, OutcomeUnknown, Unavailable

_KILL_OWN_SESSION = "SELECT pg_terminate_backend(pg_backend_pid())"


async def _no_catalog(
    schema: str, table: str, constraint: str
) -> tuple[str, str, tuple[str, ...]] | None:
    return None


@pytest.fixture
async def keyed(db: etlstore.Database) -> etlstore.Database:
    await db.execute(
        "CREATE TABLE IF NOT EXISTS keyed_writes (key uuid PRIMARY KEY, value int NOT NULL)"
    )
    return db


async def test_an_idempotent_write_cut_off_mid_statement_is_retried_and_applied_once(
    keyed: etlstore.Database,
) -> None:
    key = uuid.uuid4()
    runs = 0

    async def put(db: etlstore.Database, value: int) -> int:
        nonlocal runs
        runs += 1
        await db.execute(
            "INSERT INTO keyed_writes VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", key, value
        )
        if runs == 1:
            await db.execute(_KILL_OWN_SESSION)  # the caller never hears back: OutcomeUnknown
        stored: int = await db.fetchval("SELECT value FROM keyed_writes WHERE key = $1", key)
        return stored

    assert await keyed.run_idempotent(put, 42, base_delay_s=0.001) == 42
    assert runs == 2
    assert await keyed.fetchval("SELECT count(*) FROM keyed_writes WHERE key = $1", key) == 1


async def test_a_transaction_that_lost_its_connection_is_run_again(
    keyed: etlstore.Database,
) -> None:
    key = uuid.uuid4()
    runs = 0

    async def put_in_transaction(db: etlstore.Database) -> None:
        nonlocal runs
        runs += 1
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO keyed_writes VALUES ($1, 1)", key)
            if runs == 1:
                await tx.execute(_KILL_OWN_SESSION)  # rolled back: Unavailable

    await keyed.run_idempotent(put_in_transaction, base_delay_s=0.001)
    assert runs == 2
    assert await keyed.fetchval("SELECT count(*) FROM keyed_writes WHERE key = $1", key) == 1


async def test_errors_that_retrying_cannot_fix_propagate_after_one_run(
    keyed: etlstore.Database,
) -> None:
    key = uuid.uuid4()
    await keyed.execute("INSERT INTO keyed_writes VALUES ($1, 1)", key)
    runs = 0

    async def insert_without_key_check(db: etlstore.Database) -> None:
        nonlocal runs
        runs += 1
        await db.execute("INSERT INTO keyed_writes VALUES ($1, 2)", key)

    with pytest.raises(Conflict):
        await keyed.run_idempotent(insert_without_key_check)
    assert runs == 1


async def test_no_run_starts_after_the_deadline_and_the_last_error_is_raised(
    db: etlstore.Database,
) -> None:
    runs = 0

    async def always_cut_off(db: etlstore.Database) -> None:
        nonlocal runs
        runs += 1
        await db.execute(_KILL_OWN_SESSION)

    with pytest.raises(OutcomeUnknown):
        await db.run_idempotent(always_cut_off, deadline_s=0.0)
    assert runs == 1
    with pytest.raises(OutcomeUnknown):
        await db.run_idempotent(always_cut_off, deadline_s=0.2, base_delay_s=0.001)
    assert runs > 2
    with pytest.raises(ValueError, match="deadline_s"):
        await db.run_idempotent(always_cut_off, deadline_s=-1.0)


async def test_a_statement_refused_on_a_connection_that_already_broke_is_unavailable() -> None:
    # What asyncpg raises when a statement starts on a connection whose server already sent
    # FATAL (terminated session) but whose close it has not processed yet: nothing was sent.
    refused = asyncpg.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"
    )
    error = await translate(
        refused, "-- get_item (t)\nSELECT 1", may_have_committed=True, lookup=_no_catalog
    )
    assert isinstance(error, Unavailable)
    assert str(error) == "query get_item: the connection broke before the statement was sent"
    other = asyncpg.InternalClientError("unexpected error while performing authentication")
    assert await translate(other, "SELECT 1", may_have_committed=True, lookup=_no_catalog) is None
