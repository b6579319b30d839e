"""Sessions lost under the pool: every backend terminated, and tasks cancelled mid-query."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest

import etlstore
from tests.faults.conftest import Cluster

_TERMINATIONS = 100
_QUERIES_AFTER = 10_000
_CANCELLED_TASKS = 10_000
_BATCH = 100
_CANCELLED_IN_TRANSACTION_EVERY = 25
_POOL_SIZE = 10

_TERMINATE_ALL = """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()"""
_IDLE_IN_TRANSACTION = """SELECT count(*) FROM pg_stat_activity
WHERE datname = $1 AND state LIKE 'idle in transaction%'"""


@pytest.fixture(scope="module")
async def prepared(cluster: Cluster) -> Cluster:
    con = await asyncpg.connect(cluster.dsn)
    try:
        await con.execute(
            """
            CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
            INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 1000) AS i;
            CREATE TABLE markers (task int PRIMARY KEY);
            """
        )
    finally:
        await con.close()
    return cluster


@pytest.fixture
async def db(prepared: Cluster) -> AsyncIterator[etlstore.Database]:
    async with etlstore.connect(
        prepared.dsn,
        min_size=_POOL_SIZE,
        max_size=_POOL_SIZE,
        connect_timeout=2.0,
        acquire_timeout=5.0,
        command_timeout=5.0,
        slow_query_s=None,
    ) as database:
        yield database


@pytest.fixture
async def admin(prepared: Cluster) -> AsyncIterator[asyncpg.Connection]:
    con = await asyncpg.connect(prepared.admin_dsn)
    try:
        yield con
    finally:
        await con.close()


async def _get_item(db: etlstore.Database, item_id: int) -> str:
    name: str = await db.fetchval("SELECT name FROM items WHERE id = $1", item_id)
    return name


async def _put_item(db: etlstore.Database, item_id: int) -> None:
    # Idempotent: the key is the id, a second insert is a no-op.
    await db.execute("INSERT INTO items VALUES ($1, 'new') ON CONFLICT (id) DO NOTHING", item_id)


async def test_terminating_every_backend_100_times_shows_retry_safe_callers_no_error(
    prepared: Cluster, db: etlstore.Database, admin: asyncpg.Connection
) -> None:
    stop = asyncio.Event()
    errors: list[BaseException] = []
    calls = 0

    async def caller(number: int) -> None:
        nonlocal calls
        n = 0
        while not stop.is_set():
            n += 1
            try:
                if n % 2:
                    assert await db.run_idempotent(_get_item, 1 + n % 1000) is not None
                else:
                    await db.run_idempotent(_put_item, 100_000 + number * 100_000 + n)
            except Exception as exc:
                errors.append(exc)
            calls += 1

    terminated = 0
    async with asyncio.TaskGroup() as group:
        for number in range(_POOL_SIZE):
            group.create_task(caller(number))
        for _ in range(_TERMINATIONS):
            await asyncio.sleep(0.02)
            terminated += await admin.fetchval(_TERMINATE_ALL, prepared.database)
        stop.set()

    async def gets(worker: int) -> int:
        done = 0
        for n in range(worker, _QUERIES_AFTER, _POOL_SIZE):
            if await _get_item(db, 1 + n % 1000) is not None:
                done += 1
        return done

    succeeded = sum(await asyncio.gather(*(gets(w) for w in range(_POOL_SIZE))))
    print(
        f"\nfault 3 (all backends terminated x{_TERMINATIONS}): {terminated:,} sessions "
        f"terminated under {calls:,} retry-safe calls, {len(errors)} errors; then "
        f"{succeeded:,} of {_QUERIES_AFTER:,} plain queries succeeded"
    )
    assert errors == []
    assert terminated >= _TERMINATIONS  # every round found sessions to end
    assert succeeded == _QUERIES_AFTER


@pytest.mark.slow
async def test_tasks_cancelled_mid_query_leave_a_full_idle_pool_and_commit_nothing(
    prepared: Cluster, db: etlstore.Database, admin: asyncpg.Connection
) -> None:
    rng = random.Random(8)
    finished: set[int] = set()
    # Cancelled after the block's last statement: COMMIT may have reached the server.
    committing: set[int] = set()
    in_transaction: set[int] = set()
    loop = asyncio.get_running_loop()

    async def task(number: int) -> None:
        async with db.transaction() as tx:
            in_transaction.add(number)
            if number % _CANCELLED_IN_TRANSACTION_EVERY == 0:
                # Cancelled for sure inside the block: before its 10 ms sleep on the server ends.
                this = asyncio.current_task()
                assert this is not None
                loop.call_later(rng.uniform(0.0, 0.008), this.cancel)
            await tx.execute("INSERT INTO markers VALUES ($1)", number)
            await tx.execute("SELECT pg_sleep(0.01)")
            committing.add(number)
        finished.add(number)

    outcomes: list[BaseException | None] = []
    for first in range(0, _CANCELLED_TASKS, _BATCH):
        tasks = [loop.create_task(task(n)) for n in range(first, first + _BATCH)]
        for number, each in enumerate(tasks, start=first):
            if number % _CANCELLED_IN_TRANSACTION_EVERY:
                # At a random point: waiting for a connection, in BEGIN, a statement or COMMIT.
                loop.call_later(rng.uniform(0.0, 0.03), each.cancel)
        outcomes += await asyncio.gather(*tasks, return_exceptions=True)

    cancelled = {n for n, out in enumerate(outcomes) if isinstance(out, asyncio.CancelledError)}
    errors = [out for out in outcomes if isinstance(out, Exception)]
    mid_transaction = len(cancelled & in_transaction - committing)

    async def settled() -> tuple[etlstore.PoolStats, int]:
        # Connections dropped after a cancellation come back once the cancel reached the server.
        for _ in range(500):
            pool = db.stats().pool
            stuck = await admin.fetchval(_IDLE_IN_TRANSACTION, prepared.database)
            if pool.in_use == 0 and stuck == 0:
                break
            await asyncio.sleep(0.01)
        return pool, stuck

    pool, idle_in_transaction = await settled()
    # Full: every connection of the pool can be used at once again.
    await asyncio.gather(*(db.execute("SELECT pg_sleep(0.05)") for _ in range(_POOL_SIZE)))
    full = db.stats().pool
    markers = {row["task"] for row in await db.fetch("SELECT task FROM markers")}
    committed_though_cancelled = markers - finished - (cancelled & committing)
    print(
        f"\nfault 6 (cancellation): {len(cancelled):,} of {_CANCELLED_TASKS:,} tasks cancelled "
        f"({mid_transaction:,} inside their transaction, "
        f"{len(cancelled & committing):,} during COMMIT), {len(errors)} errors; then "
        f"pool {full.idle}/{full.max_size} idle, {pool.in_use} in use, {idle_in_transaction} "
        f"backends idle in transaction, {len(committed_though_cancelled)} cancelled "
        f"transactions committed, {len(finished - markers)} finished ones missing"
    )
    assert errors == []
    assert len(cancelled) + len(finished) == _CANCELLED_TASKS
    assert mid_transaction >= _CANCELLED_TASKS // _CANCELLED_IN_TRANSACTION_EVERY * 3 // 4
    assert (pool.in_use, pool.waiting, idle_in_transaction) == (0, 0, 0)
    assert (full.size, full.idle, full.in_use) == (_POOL_SIZE, _POOL_SIZE, 0)
    assert committed_though_cancelled == set()
    assert finished <= markers
