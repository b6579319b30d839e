"""run_in_transaction: retried on serialization failures only; lost COMMITs are OutcomeUnknown."""

from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg
import pytest

import etlstore
from etlstore._retry import backoff_delay
from etlstore.errors import Conflict, OutcomeUnknown, SerializationConflict, Unavailable
from tests.runtime.conftest import wait_until


@pytest.fixture
async def duty(db: etlstore.Database) -> etlstore.Database:
    await db.execute(
        """
        DROP TABLE IF EXISTS on_call;
        CREATE TABLE on_call (doctor text PRIMARY KEY, on_duty bool NOT NULL);
        INSERT INTO on_call VALUES ('alice', true), ('bob', true);
        """
    )
    return db


async def test_write_skew_between_serializable_transactions_is_retried_until_both_succeed(
    duty: etlstore.Database,
) -> None:
    both_read = asyncio.Barrier(2)
    runs: list[str] = []

    async def add_colleague(tx: etlstore.Transaction, name: str) -> int:
        first_run = name not in runs
        runs.append(name)
        on_duty = await tx.fetchval("SELECT count(*) FROM on_call WHERE on_duty")
        if first_run:
            await both_read.wait()  # both read before either writes: a write skew
        await tx.execute("INSERT INTO on_call VALUES ($1, true)", name)
        return int(on_duty)

    seen = await asyncio.gather(
        duty.run_in_transaction(add_colleague, "carol", base_delay_s=0.001),
        duty.run_in_transaction(add_colleague, "dave", base_delay_s=0.001),
    )
    assert sorted(seen) == [2, 3]  # the retried one saw the other's committed row
    assert len(runs) == 3
    assert await duty.fetchval("SELECT count(*) FROM on_call") == 4


async def test_serialization_failures_are_retried_a_bounded_number_of_times(
    db: etlstore.Database,
) -> None:
    runs = 0

    async def always_fails(tx: etlstore.Transaction) -> None:
        nonlocal runs
        runs += 1
        await tx.execute(
            "DO $$ BEGIN RAISE EXCEPTION 'lost' USING ERRCODE = 'serialization_failure'; END $$"
        )

    with pytest.raises(SerializationConflict):
        await db.run_in_transaction(always_fails, attempts=3, base_delay_s=0.001)
    assert runs == 3


async def test_constraint_violations_are_not_retried(duty: etlstore.Database) -> None:
    runs = 0

    async def duplicate(tx: etlstore.Transaction) -> None:
        nonlocal runs
        runs += 1
        await tx.execute("INSERT INTO on_call VALUES ('alice', false)")

    with pytest.raises(Conflict):
        await duty.run_in_transaction(duplicate)
    assert runs == 1


async def test_run_in_transaction_returns_the_functions_result(duty: etlstore.Database) -> None:
    async def count(tx: etlstore.Transaction, on_duty: bool) -> int:
        return int(await tx.fetchval("SELECT count(*) FROM on_call WHERE on_duty = $1", on_duty))

    assert await duty.run_in_transaction(count, True, isolation="repeatable_read") == 2


def test_backoff_is_jittered_exponential_and_capped() -> None:
    rng = random.Random(7)
    delays = [
        [backoff_delay(attempt, base_s=0.01, cap_s=0.05, rng=rng) for _ in range(200)]
        for attempt in (1, 2, 3, 4, 5)
    ]
    for attempt, samples in enumerate(delays, start=1):
        bound = min(0.05, 0.01 * 2 ** (attempt - 1))
        assert all(0 <= d <= bound for d in samples)
        assert max(samples) > bound * 0.9  # spread over the whole range
        assert len(set(samples)) > 100


async def _terminate_when_waiting(admin: asyncpg.Connection, dsn: str, marker: str) -> None:
    """Terminate the backend of ``dsn``'s database running a statement containing ``marker``."""

    async def waiting() -> bool:
        pids = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE $1 AND state = 'active'"
            " AND datname = $2 AND pid <> pg_backend_pid()",
            f"%{marker}%",
            dsn.rsplit("/", 1)[1],
        )
        for row in pids:
            await admin.execute("SELECT pg_terminate_backend($1)", row["pid"])
        return bool(pids)

    assert await wait_until(waiting)


async def test_connection_lost_during_an_autocommit_write_is_outcome_unknown(
    duty: etlstore.Database, admin: asyncpg.Connection, runtime_dsn: str
) -> None:
    write = duty.execute(
        "-- slow_write (t)\nUPDATE on_call SET on_duty = false WHERE pg_sleep(5) IS NOT NULL"
    )
    results = await asyncio.gather(
        write, _terminate_when_waiting(admin, runtime_dsn, "slow_write"), return_exceptions=True
    )
    assert isinstance(results[0], OutcomeUnknown)
    assert results[1] is None
    assert await duty.fetchval("SELECT 1") == 1


async def test_connection_lost_inside_a_transaction_is_unavailable(
    duty: etlstore.Database, admin: asyncpg.Connection, runtime_dsn: str
) -> None:
    async def slow_write() -> None:
        async with duty.transaction() as tx:
            await tx.execute("-- tx_write (t)\nSELECT pg_sleep(5)")

    results = await asyncio.gather(
        slow_write(),
        _terminate_when_waiting(admin, runtime_dsn, "tx_write"),
        return_exceptions=True,
    )
    assert isinstance(results[0], Unavailable)
    assert await duty.fetchval("SELECT 1") == 1


async def test_connection_lost_during_commit_is_outcome_unknown(
    duty: etlstore.Database, admin: asyncpg.Connection, runtime_dsn: str
) -> None:
    await duty.execute(
        """
        CREATE OR REPLACE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM pg_sleep(5); RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER on_call_slow_commit AFTER INSERT ON on_call
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();
        """
    )

    async def insert() -> None:
        async with duty.transaction() as tx:
            await tx.execute("INSERT INTO on_call VALUES ('erin', true)")

    results = await asyncio.gather(
        insert(), _terminate_when_waiting(admin, runtime_dsn, "COMMIT"), return_exceptions=True
    )
    assert isinstance(results[0], OutcomeUnknown)
    assert results[0].query == "(commit)"


async def test_idempotency_key_makes_retrying_an_unknown_outcome_safe(
    db: etlstore.Database, admin: asyncpg.Connection, runtime_dsn: str
) -> None:
    await db.execute(
        "CREATE TABLE IF NOT EXISTS started_runs (request_id uuid PRIMARY KEY, pipeline int)"
    )
    create_once = (
        "-- create_run_once (docs/runtime.md)\n"
        "INSERT INTO started_runs SELECT $1, $2 FROM pg_sleep($3)"
        " ON CONFLICT (request_id) DO NOTHING"
    )
    request_id = uuid.uuid4()
    outcomes: list[str] = []
    for pause in (5.0, 0.0, 0.0):  # the first attempt is cut off mid-write
        attempt = db.execute(create_once, request_id, 7, pause)
        if pause:
            results = await asyncio.gather(
                attempt,
                _terminate_when_waiting(admin, runtime_dsn, "create_run_once"),
                return_exceptions=True,
            )
            assert isinstance(results[0], OutcomeUnknown)
            outcomes.append("unknown")
        else:
            outcomes.append(await attempt)
    assert outcomes == ["unknown", "INSERT 0 1", "INSERT 0 0"]
    count = await db.fetchval("SELECT count(*) FROM started_runs WHERE request_id = $1", request_id)
    assert count == 1
