"""Concurrent serializable transfers, retried on serialization failures: the total holds."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest

import etlstore
from etlstore.errors import SerializationConflict
from tests.faults.conftest import Cluster

_ACCOUNTS = 10
_OPENING_BALANCE = 1_000
_WORKERS = 10
_TRANSFERS_PER_WORKER = 40


@pytest.mark.slow
async def test_concurrent_serializable_transfers_keep_the_total_with_no_unretried_error(
    cluster: Cluster,
) -> None:
    con = await asyncpg.connect(cluster.dsn)
    try:
        await con.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)")
        await con.execute(
            "INSERT INTO accounts SELECT i, $1 FROM generate_series(1, $2) AS i",
            _OPENING_BALANCE,
            _ACCOUNTS,
        )
    finally:
        await con.close()
    runs = 0

    async def transfer(tx: etlstore.Transaction, source: int, target: int, amount: int) -> bool:
        nonlocal runs
        runs += 1
        # Read, decide, write: the pattern serializable isolation protects from write skew.
        balance = await tx.fetchval("SELECT balance FROM accounts WHERE id = $1", source)
        if balance < amount:
            return False
        await tx.execute("UPDATE accounts SET balance = balance - $2 WHERE id = $1", source, amount)
        await tx.execute("UPDATE accounts SET balance = balance + $2 WHERE id = $1", target, amount)
        return True

    errors: list[BaseException] = []
    done = 0

    async with etlstore.connect(cluster.dsn, min_size=8, max_size=_WORKERS) as db:

        async def worker(seed: int) -> None:
            nonlocal done
            rng = random.Random(seed)
            for _ in range(_TRANSFERS_PER_WORKER):
                source, target = rng.sample(range(1, _ACCOUNTS + 1), 2)
                try:
                    await db.run_in_transaction(
                        transfer, source, target, rng.randint(1, 300), attempts=50
                    )
                except Exception as exc:
                    errors.append(exc)
                else:
                    done += 1

        await asyncio.gather(*(worker(seed) for seed in range(_WORKERS)))
        total = await db.fetchval("SELECT sum(balance)::bigint FROM accounts")
        overdrawn = await db.fetchval("SELECT count(*) FROM accounts WHERE balance < 0")
    requested = _WORKERS * _TRANSFERS_PER_WORKER
    unretried = [e for e in errors if not isinstance(e, SerializationConflict)]
    print(
        f"\nfault 7 (serializable transfers): {done:,} of {requested:,} transfers done, "
        f"{runs - requested:,} serialization retries, total {total:,} "
        f"(expected {_ACCOUNTS * _OPENING_BALANCE:,}), {overdrawn} overdrawn, "
        f"{len(unretried)} non-retryable errors, {len(errors) - len(unretried)} out of attempts"
    )
    assert total == _ACCOUNTS * _OPENING_BALANCE
    assert overdrawn == 0
    assert unretried == []
    assert errors == []
