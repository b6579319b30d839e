"""Fixtures of the runtime tests: a database of their own, a Database on it, an admin view."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

import etlstore


@pytest.fixture(scope="module")
def runtime_dsn(make_database: Callable[[], str]) -> str:
    """A database for one test module (tests create the small tables they need)."""
    return make_database()


@pytest.fixture
async def db(runtime_dsn: str) -> AsyncIterator[etlstore.Database]:
    """A Database on the module's database, closed after the test."""
    async with etlstore.connect(runtime_dsn, min_size=1, max_size=4) as database:
        yield database


@pytest.fixture
async def admin(pg_server: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the server's maintenance database: it watches without being counted."""
    con = await asyncpg.connect(pg_server)
    try:
        yield con
    finally:
        await con.close()


async def backends(admin: asyncpg.Connection, dsn: str) -> list[asyncpg.Record]:
    """The client backends connected to ``dsn``'s database, with their state."""
    database = dsn.rsplit("/", 1)[1].split("?", 1)[0]
    return await admin.fetch(
        "SELECT pid, state, xact_start FROM pg_stat_activity"
        " WHERE datname = $1 AND backend_type = 'client backend'",
        database,
    )


async def wait_until(check: Callable[[], Awaitable[bool]], *, attempts: int = 500) -> bool:
    """Poll ``check`` every 10 ms until it holds; whether it did (asserted by the caller)."""
    for _ in range(attempts):
        if await check():
            return True
        await asyncio.sleep(0.01)
    return False
