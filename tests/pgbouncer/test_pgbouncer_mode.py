"""``connect(pgbouncer=True)`` through Debian's PgBouncer in transaction pooling mode.

16 client connections share 4 server connections (conftest), so consecutive statements of one
client connection run on different server backends, as they would in production.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final
from uuid import uuid4

import asyncpg
import pytest

import etlstore
from etlstore import Database, Transaction
from etlstore.errors import CheckViolation, NotFound, QueryTimeout, Unavailable
from etlstore.queries import events, pipelines, plugins, users
from etlstore.queries.events import CopyEventsRecord
from etlstore.queries.models import PluginType, Role
from etlstore.queries.pipelines import UpsertPipelineStepsParams
from etlstore.services import access
from etlstore.services._common import SYSTEM
from tests._pgbouncer import require_pgbouncer, running_pgbouncer
from tests.domain._factories import make_pipeline, make_plugin, make_user
from tests.pgbouncer.conftest import CLIENTS, POOL_SIZE

QUERIES: Final = 10_000
TASKS: Final = 64
_BACKEND_PID: Final = "SELECT pg_backend_pid()"
_READS: Final = ("get_user", "get_user_by_username", "get_plugin", "get_pipeline_by_name")


def _tag() -> str:
    return f"pgb-{uuid4().hex[:10]}"


async def test_ten_thousand_generated_queries_on_shared_server_connections_all_succeed(
    bouncer_db: Database,
) -> None:
    tag = _tag()
    people = [await make_user(bouncer_db, f"{tag}-{n}") for n in range(8)]
    plugin = await make_plugin(bouncer_db, tag)
    pipeline = await make_pipeline(bouncer_db, tag)
    calls = iter(range(QUERIES))  # shared: the tasks make exactly QUERIES calls together
    failures: list[BaseException] = []
    backends: set[int] = set()

    async def read(n: int) -> None:
        person = people[n % len(people)]
        kind = n % 4
        if kind == 0:
            found = await users.get_user(bouncer_db, id=person.id)
            assert found is not None
            assert found.username == person.username
        elif kind == 1:
            by_name = await users.get_user_by_username(bouncer_db, username=person.username)
            assert by_name is not None
            assert by_name.id == person.id
        elif kind == 2:
            got = await plugins.get_plugin(bouncer_db, id=plugin.id)
            assert got is not None
            assert got.plugin_type is PluginType.EXTRACTOR
        else:
            named = await pipelines.get_pipeline_by_name(bouncer_db, name=tag)
            assert named is not None
            assert named.id == pipeline.id

    async def worker() -> None:
        for n in calls:
            try:
                await read(n)
            except Exception as exc:  # counted, never stops the run: the assertion shows them
                failures.append(exc)
            if n % 100 == 0:
                backends.add(await bouncer_db.fetchval(_BACKEND_PID))

    try:
        await asyncio.gather(*(worker() for _ in range(TASKS)))
        stats = bouncer_db.stats()
    finally:
        await pipelines.delete_pipeline(bouncer_db, id=pipeline.id)
        await plugins.delete_plugin(bouncer_db, id=plugin.id)
        for person in people:
            await users.delete_user(bouncer_db, id=person.id)

    assert failures == []
    assert sum(stats.queries[name].calls for name in _READS) == QUERIES
    assert sum(stats.queries[name].errors for name in _READS) == 0
    # The clients really shared the server connections.
    assert stats.pool.size == CLIENTS
    assert 1 <= len(backends) <= POOL_SIZE


async def _busy(db: Database, stop: asyncio.Event) -> None:
    """Other clients' statements, taking server connections between a transaction's."""
    while not stop.is_set():
        await db.fetchval(_BACKEND_PID)


async def test_a_transaction_keeps_all_its_statements_on_one_server_connection(
    bouncer_db: Database,
) -> None:
    tag = _tag()

    async def create_and_read(tx: Transaction, name: str) -> tuple[set[int], Role]:
        seen = {await tx.fetchval(_BACKEND_PID)}
        role = await users.create_role(tx, name=name, description="through pgbouncer")
        await asyncio.sleep(0.001)  # the other clients run meanwhile
        seen.add(await tx.fetchval(_BACKEND_PID))
        assert await users.get_role_by_name(tx, name=name) == role
        seen.add(await tx.fetchval(_BACKEND_PID))
        return seen, role

    stop = asyncio.Event()
    others = [asyncio.create_task(_busy(bouncer_db, stop)) for _ in range(CLIENTS - 2)]
    created: list[Role] = []
    try:
        for n in range(20):
            seen, role = await bouncer_db.run_in_transaction(create_and_read, f"{tag}-{n}")
            created.append(role)
            assert len(seen) == 1
            assert await users.get_role_by_name(bouncer_db, name=role.name) == role  # committed
    finally:
        stop.set()
        await asyncio.gather(*others)
        for role in created:
            await users.delete_role(bouncer_db, id=role.id)


async def test_a_failed_transaction_is_rolled_back_on_its_server_connection(
    bouncer_db: Database,
) -> None:
    name = _tag()

    async def fail_after_a_write() -> None:
        async with bouncer_db.transaction() as tx:
            await users.create_role(tx, name=name, description="rolled back")
            await asyncio.sleep(0.001)
            await users.create_permission(tx, code="not a valid code!", description="")

    stop = asyncio.Event()
    others = [asyncio.create_task(_busy(bouncer_db, stop)) for _ in range(CLIENTS - 2)]
    try:
        with pytest.raises(CheckViolation):
            await fail_after_a_write()
        assert await users.get_role_by_name(bouncer_db, name=name) is None
    finally:
        stop.set()
        await asyncio.gather(*others)


async def test_executemany_and_copy_run_through_pgbouncer(bouncer_db: Database) -> None:
    tag = _tag()
    plugin = await make_plugin(bouncer_db, tag)
    pipeline = await make_pipeline(bouncer_db, tag)
    since = datetime.now(UTC) - timedelta(minutes=1)

    async def write_steps(tx: Transaction) -> list[int]:
        await pipelines.upsert_pipeline_steps(
            tx,
            params=[
                UpsertPipelineStepsParams(pipeline.id, position, plugin.id, {"n": position})
                for position in range(3)
            ],
        )
        steps = await pipelines.list_pipeline_steps(tx, pipeline_id=pipeline.id)
        return [step.position for step in steps]

    try:
        assert await bouncer_db.run_in_transaction(write_steps) == [0, 1, 2]
        copied = await events.copy_events(
            bouncer_db,
            records=[CopyEventsRecord(tag, {"n": n}, f"{tag}-{n}") for n in range(50)],
        )
        assert copied == 50
        stored = await events.list_events_by_type(
            bouncer_db,
            event_type=tag,
            since=since,
            until=datetime.now(UTC) + timedelta(minutes=1),
            limit=100,
        )
        assert sorted(e.data["n"] for e in stored) == list(range(50))  # type: ignore[index]
    finally:
        await bouncer_db.execute("DELETE FROM events WHERE event_type = $1", tag)
        await pipelines.delete_pipeline(bouncer_db, id=pipeline.id)  # its steps go with it
        await plugins.delete_plugin(bouncer_db, id=plugin.id)


async def test_typed_errors_come_back_through_pgbouncer(bouncer_db: Database) -> None:
    name = _tag()
    role = await users.create_role(bouncer_db, name=name, description="")
    person = await make_user(bouncer_db, name)
    try:
        with pytest.raises(etlstore.errors.Conflict) as taken:
            await users.create_role(bouncer_db, name=name, description="again")
        assert taken.value.constraint == "roles_name_key"
        assert taken.value.columns == ("name",)  # read from the catalog, through pgbouncer too
        with pytest.raises(NotFound, match="role"):
            await access.grant_role(bouncer_db, person.id, uuid4(), actor=SYSTEM)
    finally:
        await users.delete_user(bouncer_db, id=person.id)
        await users.delete_role(bouncer_db, id=role.id)


async def test_each_client_keeps_its_application_name_on_shared_server_connections(
    bouncer_dsn: str,
) -> None:
    async def names_seen(application_name: str) -> set[str]:
        async with etlstore.connect(
            bouncer_dsn, pgbouncer=True, application_name=application_name, max_size=4
        ) as db:
            names = await asyncio.gather(
                *(db.fetchval("SHOW application_name") for _ in range(200))
            )
        return set(names)

    first, second = await asyncio.gather(names_seen("pgb-first"), names_seen("pgb-second"))
    assert (first, second) == ({"pgb-first"}, {"pgb-second"})


async def test_the_default_mode_is_refused_by_pgbouncer_at_connect(bouncer_dsn: str) -> None:
    # jit and the timeouts travel in the startup packet, which PgBouncer refuses.
    with pytest.raises(Unavailable, match="unsupported startup parameter: jit"):
        await etlstore.connect(bouncer_dsn)


async def test_the_statement_cache_breaks_under_transaction_pooling_before_pgbouncer_1_21(
    migrated_database: str, pg_server: str, tmp_path: Path
) -> None:
    """A statement prepared on one server connection is gone on the next one: so the mode
    turns asyncpg's statement cache off (PgBouncer >= 1.21 can track it; not here)."""
    require_pgbouncer()
    query = "-- add_one (test)\nSELECT $1::int + 1"
    with running_pgbouncer(pg_server, tmp_path, pool_size=2) as fresh:  # no server yet
        url = fresh.dsn_for(migrated_database)
        for cache_size, fails in ((100, True), (None, False)):
            async with (
                etlstore.connect(url, pgbouncer=True, statement_cache_size=cache_size) as db,
                etlstore.connect(url, pgbouncer=True) as other,
            ):
                assert await db.fetchval(query, 1) == 2  # prepared on server connection A
                async with other.transaction() as tx:  # A is busy: the next read gets B
                    await tx.fetchval(_BACKEND_PID)
                    if fails:
                        with pytest.raises(asyncpg.InvalidSQLStatementNameError):
                            await db.fetchval(query, 1)
                    else:
                        assert await db.fetchval(query, 1) == 2


async def test_command_timeout_cancels_the_statement_through_pgbouncer(bouncer_dsn: str) -> None:
    """The timeout that works through PgBouncer: asyncpg's cancel request reaches the server."""
    async with etlstore.connect(
        bouncer_dsn, pgbouncer=True, command_timeout=0.2, min_size=CLIENTS, max_size=CLIENTS
    ) as db:
        # More sleepers than server connections: two time out in PgBouncer's queue.
        slow = [db.fetchval("SELECT pg_sleep(30)") for _ in range(POOL_SIZE + 2)]
        results = await asyncio.gather(*slow, return_exceptions=True)
        assert all(isinstance(r, QueryTimeout) for r in results), results
        assert await db.fetchval("SELECT 41 + 1") == 42


def test_server_side_timeouts_are_refused_in_pgbouncer_mode() -> None:
    with pytest.raises(ValueError, match=r"statement_timeout, lock_timeout .*ALTER ROLE"):
        etlstore.connect(
            "postgresql://x@127.0.0.1/x", pgbouncer=True, statement_timeout=5, lock_timeout=1
        )
