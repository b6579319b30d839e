"""Partitioned tables: maintenance, retention, keys unique across partitions, pruning, migration."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from yoyo import get_backend, read_migrations

import etlstore
from etlstore import Database
from etlstore._config import yoyo_url
from etlstore._drift import schema_snapshot
from etlstore._migrations import apply_migrations
from etlstore._partitions import maintain, show
from etlstore.cli import main
from etlstore.errors import Conflict, InvalidReference, QueryTimeout
from etlstore.queries import events, partitions, pipeline_executions, step_executions
from etlstore.queries.events import CopyEventsRecord
from etlstore.queries.models import TriggerKind
from tests.conftest import MIGRATIONS
from tests.domain._factories import make_pipeline

NOW = datetime.now(UTC)


@pytest.fixture
def dsn(make_database: Callable[[], str]) -> str:
    """A migrated database of this test's own: maintenance changes the whole schema."""
    database = make_database()
    apply_migrations(database, MIGRATIONS)
    return database


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[Database]:
    async with etlstore.connect(dsn, min_size=1, max_size=8) as database:
        yield database


async def _partition_names(db: Database, table: str) -> list[str]:
    return [p.partition_name for p in await partitions.list_partitions(db, table_name=table)]


async def _maintain(db: Database, at: datetime) -> list[partitions.MaintainPartitionsRow]:
    async with db.transaction() as tx:
        return await partitions.maintain_partitions(tx, at=at)


async def _retain(db: Database, table: str, days: int, action: str = "drop") -> None:
    updated = await partitions.update_partition_policy(
        db,
        table_name=table,
        partition_unit="month",
        premake=3,
        retention=timedelta(days=days),
        retention_action=action,
    )
    assert updated is not None


async def _event_at(db: Database, created_at: datetime, key: str | None = None) -> UUID:
    """An event created at a given time (as a producer's backfill would be)."""
    found = await db.fetchval(
        "INSERT INTO events (event_type, data, idempotency_key, created_at)"
        " VALUES ('file.arrived', '{}', $1, $2) RETURNING id",
        key,
        created_at,
    )
    assert isinstance(found, UUID)
    return found


async def test_maintenance_creates_partitions_ahead_of_time_once(db: Database) -> None:
    # The migration ran it as of now already: nothing is missing today.
    assert await _maintain(db, NOW) == []
    later = NOW + timedelta(days=365)
    created = await _maintain(db, later)
    assert {a.action for a in created} == {"created"}
    # The partition holding `at` and premake (3) more, for each of the three tables.
    assert len(created) == 12
    month = later.strftime("%Y%m01")
    assert f"events_p{month}" in await _partition_names(db, "events")
    assert await _maintain(db, later) == []


async def test_a_new_unit_fills_only_what_the_old_partitions_leave_uncovered(
    db: Database,
) -> None:
    await _maintain(db, datetime(2031, 6, 15, tzinfo=UTC))  # months June to September 2031
    updated = await partitions.update_partition_policy(
        db,
        table_name="events",
        partition_unit="week",
        premake=3,
        retention=None,
        retention_action="drop",
    )
    assert updated is not None

    # Weeks from Monday 15 September: the first two lie in September's partition, the third
    # (29 September to 6 October) only in part.
    created = await _maintain(db, datetime(2031, 9, 17, tzinfo=UTC))

    weeks = [(a.lower_bound, a.upper_bound) for a in created if a.table_name == "events"]
    assert weeks == [
        (datetime(2031, 10, 1, tzinfo=UTC), datetime(2031, 10, 6, tzinfo=UTC)),
        (datetime(2031, 10, 6, tzinfo=UTC), datetime(2031, 10, 13, tzinfo=UTC)),
    ]


async def test_rows_go_to_the_partition_of_their_time(db: Database) -> None:
    event_id = await _event_at(db, NOW)
    partition = await db.fetchval(
        "SELECT tableoid::regclass::text FROM events WHERE id = $1", event_id
    )
    assert partition == f"events_p{NOW.strftime('%Y%m01')}"


async def test_retention_drops_expired_partitions_with_their_steps_and_keys(
    db: Database,
) -> None:
    old = NOW - timedelta(days=400)
    await _maintain(db, old)  # the partitions of a year ago, as if maintenance had run then
    pipeline = await make_pipeline(db)
    expired = await db.fetchval(
        "INSERT INTO pipeline_executions (pipeline_id, triggered_by, idempotency_key, queued_at)"
        " VALUES ($1, 'api', 'nightly-1', $2) RETURNING id",
        pipeline.id,
        old,
    )
    await step_executions.create_step_execution(
        db, pipeline_execution_id=expired, step_id=None, position=0
    )
    current = await pipeline_executions.enqueue_pipeline_execution(
        db,
        pipeline_id=pipeline.id,
        triggered_by=TriggerKind.API,
        triggered_by_user_id=None,
        idempotency_key="nightly-2",
        context={},
    )
    assert current is not None

    await _retain(db, "pipeline_executions", 90)
    actions = await _maintain(db, NOW)

    # The month of `old` and the three made ahead with it, all past the retention.
    dropped = [a for a in actions if a.action == "dropped"]
    assert dropped[0].partition_name == f"pipeline_executions_p{old:%Y%m01}"
    assert [a.affected_rows for a in dropped] == [1, 0, 0, 0]
    assert all(
        a.upper_bound is not None and a.upper_bound <= NOW - timedelta(days=90) for a in dropped
    )
    assert await pipeline_executions.get_pipeline_execution(db, id=expired) is None
    assert await step_executions.list_step_executions(db, pipeline_execution_id=expired) == []
    assert await pipeline_executions.get_pipeline_execution(db, id=current.id) == current
    # The expired execution's key went with it: the key can be used again.
    again = await pipeline_executions.enqueue_pipeline_execution(
        db,
        pipeline_id=pipeline.id,
        triggered_by=TriggerKind.API,
        triggered_by_user_id=None,
        idempotency_key="nightly-1",
        context={},
    )
    assert again is not None
    # Only pipeline_executions has a retention; the other tables keep their old partitions.
    assert f"events_p{old:%Y%m01}" in await _partition_names(db, "events")


async def test_detach_keeps_the_expired_partition_as_a_table_of_its_own(
    db: Database,
) -> None:
    old = NOW - timedelta(days=400)
    await _maintain(db, old)
    await _event_at(db, old, key="archived")
    await _retain(db, "events", 90, "detach")

    actions = await _maintain(db, NOW)

    name = f"events_p{old:%Y%m01}"
    assert {a.action for a in actions} == {"detached"}
    assert actions[0].partition_name == name
    assert [a.affected_rows for a in actions] == [1, 0, 0, 0]
    assert name not in await _partition_names(db, "events")
    assert await db.fetchval(f"SELECT count(*) FROM {name}") == 1
    assert await events.get_event_by_idempotency_key(db, idempotency_key="archived") is None


async def test_no_partition_is_created_over_rows_in_the_default_partition(
    db: Database,
) -> None:
    far = datetime(2031, 1, 10, tzinfo=UTC)
    early = await _event_at(db, far)  # no partition covers 2031 yet: the default takes it

    actions = await _maintain(db, far)

    blocked = [a for a in actions if a.table_name == "events" and a.partition_name is None]
    assert [(a.action, a.lower_bound, a.affected_rows) for a in blocked] == [
        ("blocked by rows in the default partition", datetime(2031, 1, 1, tzinfo=UTC), 1)
    ]
    assert "events_p20310201" in await _partition_names(db, "events")  # the months after it
    stored = await events.get_event(db, id=early)
    assert stored is not None
    assert stored.created_at == far


async def test_expired_rows_in_the_default_partition_are_deleted(db: Database) -> None:
    ancient = await _event_at(db, datetime(2001, 5, 1, tzinfo=UTC), key="ancient")
    await _retain(db, "events", 90)

    actions = await _maintain(db, NOW)

    assert [(a.action, a.partition_name, a.affected_rows) for a in actions] == [
        ("deleted expired rows", "events_default", 1)
    ]
    assert await events.get_event(db, id=ancient) is None
    assert await events.get_event_by_idempotency_key(db, idempotency_key="ancient") is None


async def test_an_idempotency_key_is_unique_across_partitions(db: Database) -> None:
    first = await _event_at(db, NOW - timedelta(days=100), key="k")

    assert (
        await events.ingest_event(db, event_type="file.arrived", data={}, idempotency_key="k")
        is None
    )
    found = await events.get_event_by_idempotency_key(db, idempotency_key="k")
    assert found is not None
    assert found.id == first
    with pytest.raises(Conflict) as caught:
        await events.copy_events(db, records=[CopyEventsRecord("file.arrived", {}, "k")])
    assert caught.value.table == "events"
    assert caught.value.constraint == "events_idempotency_key_key"
    assert caught.value.columns == ("idempotency_key",)


async def test_concurrent_sends_of_one_key_store_one_row(db: Database) -> None:
    pipeline = await make_pipeline(db)
    # Eight at once: each waits for the first one's claim of the key, then inserts nothing.
    ingested = await asyncio.gather(
        *(
            events.ingest_event(db, event_type="file.arrived", data={"n": n}, idempotency_key="k")
            for n in range(8)
        )
    )
    queued = await asyncio.gather(
        *(
            pipeline_executions.enqueue_pipeline_execution(
                db,
                pipeline_id=pipeline.id,
                triggered_by=TriggerKind.API,
                triggered_by_user_id=None,
                idempotency_key="k",
                context={},
            )
            for _ in range(8)
        )
    )

    assert sum(event is not None for event in ingested) == 1
    assert sum(execution is not None for execution in queued) == 1
    assert await db.fetchval("SELECT count(*) FROM events WHERE idempotency_key = 'k'") == 1
    assert await db.fetchval("SELECT count(*) FROM pipeline_executions") == 1


async def test_an_error_in_a_partition_names_the_partitioned_table_and_its_constraint(
    db: Database,
) -> None:
    with pytest.raises(InvalidReference) as caught:
        await pipeline_executions.enqueue_pipeline_execution(
            db,
            pipeline_id=UUID(int=7),
            triggered_by=TriggerKind.API,
            triggered_by_user_id=None,
            idempotency_key=None,
            context={},
        )
    assert caught.value.table == "pipeline_executions"
    assert caught.value.constraint == "pipeline_executions_pipeline_id_fkey"
    assert caught.value.columns == ("pipeline_id",)


def _scanned(plan: object) -> set[str]:
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            found.add(str(plan["Relation Name"]))
        for value in plan.values():
            found |= _scanned(value)
    elif isinstance(plan, list):
        for item in plan:
            found |= _scanned(item)
    return found


async def test_a_time_bounded_query_reads_only_the_partitions_of_its_window(
    db: Database,
) -> None:
    month = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    async with db.transaction() as tx:
        await tx.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        plan = await tx.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON, COSTS OFF, TIMING OFF) " + events.LIST_EVENTS_BY_TYPE,
            "file.arrived",
            month,
            month + timedelta(days=5),
            10,
        )
    scanned = _scanned(json.loads(plan))
    # Pruned at run time, with the parameters of a generic plan: one month of five partitions.
    assert scanned == {f"events_p{month:%Y%m%d}"}


def test_maintenance_gives_up_on_a_table_a_long_transaction_uses(dsn: str) -> None:
    later = NOW + timedelta(days=400)
    with psycopg.connect(dsn) as reader:
        reader.execute("SELECT count(*) FROM events")  # its lock lasts until the transaction ends
        with pytest.raises(QueryTimeout) as caught:
            maintain(dsn, later, attempts=1)
        assert caught.value.sqlstate == "55P03"  # lock_not_available
        reader.rollback()

    # Nothing of the failed run stayed (it created component_metrics' partitions first).
    created = maintain(dsn, later)
    assert len(created) == 12
    assert {a.action for a in created} == {"created"}


def test_the_command_shows_policies_and_partitions_and_rejects_a_bad_policy(
    dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", dsn)
    assert main(["partitions"]) == 0
    shown = capsys.readouterr().out
    assert "events: one partition per month (UTC), 3 ahead, kept forever" in shown
    assert "events_default" in shown

    assert main(["partitions", "policy", "events", "--premake", "0"]) == 1
    assert "partition_policies_premake_check" in capsys.readouterr().err
    assert main(["partitions", "policy", "events", "--unit", "week", "--retention-days", "30"]) == 0
    policies = {policy.table_name: policy for policy, _ in show(dsn)}
    assert policies["events"].partition_unit == "week"
    assert policies["events"].retention == timedelta(days=30)
    assert policies["pipeline_executions"].retention is None

    # Weekly from where the monthly partitions end; the 30-day retention retires the old ones.
    assert main(["partitions", "maintain", "--at", (NOW + timedelta(days=200)).isoformat()]) == 0
    done = capsys.readouterr().out
    assert "events: created events_p" in done
    assert "events: dropped events_p" in done


def _rows(dsn: str) -> dict[str, list[tuple[object, ...]]]:
    queries = {
        "pipeline_executions": "SELECT id, idempotency_key, queued_at FROM pipeline_executions",
        "step_executions": "SELECT id, pipeline_execution_id FROM step_executions",
        "events": "SELECT id, idempotency_key, created_at FROM events",
        "component_metrics": "SELECT id, metric_name, recorded_at FROM component_metrics",
    }
    with psycopg.connect(dsn) as conn:
        return {table: sorted(conn.execute(q).fetchall()) for table, q in queries.items()}


_SEED = """
INSERT INTO plugins (name, plugin_type, variant, version, namespace)
    VALUES ('tap', 'extractor', 'default', '1', 'tap');
INSERT INTO pipelines (name, timezone) VALUES ('orders', 'UTC');
INSERT INTO pipeline_steps (pipeline_id, position, plugin_id)
    SELECT p.id, 0, g.id FROM pipelines AS p, plugins AS g;
INSERT INTO pipeline_executions (pipeline_id, triggered_by, idempotency_key, queued_at)
    SELECT id, 'api', 'k' || n, now() - n * interval '20 days'
    FROM pipelines, generate_series(1, 30) AS n;
INSERT INTO step_executions (pipeline_execution_id, step_id, position)
    SELECT e.id, s.id, 0 FROM pipeline_executions AS e, pipeline_steps AS s;
INSERT INTO events (event_type, data, idempotency_key, created_at)
    SELECT 'file.arrived', '{}', 'e' || n, now() - n * interval '11 days'
    FROM generate_series(1, 50) AS n;
INSERT INTO jobs (name) VALUES ('nightly');
INSERT INTO components (job_id, name, component_type) SELECT id, 'c', 'extractor' FROM jobs;
INSERT INTO component_metrics (component_id, metric_name, value, recorded_at)
    SELECT id, 'rows', n, now() - n * interval '7 days'
    FROM components, generate_series(1, 40) AS n;
"""


def test_migration_0007_keeps_every_row_and_its_rollback_restores_them(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    before_0007 = tmp_path / "migrations"
    before_0007.mkdir()
    for migration in MIGRATIONS.glob("000[1-6]_*.sql"):
        shutil.copy(migration, before_0007)
    dsn = make_database()
    apply_migrations(dsn, before_0007)
    with psycopg.connect(dsn) as conn:
        conn.execute(_SEED)
        schema_before = schema_snapshot(conn)
    rows_before = _rows(dsn)

    apply_migrations(dsn, MIGRATIONS)

    assert _rows(dsn) == rows_before
    with psycopg.connect(dsn) as conn:
        keys = conn.execute("SELECT count(*) FROM pipeline_execution_idempotency_keys").fetchone()
        assert keys == (30,)
        in_default = conn.execute("SELECT count(*) FROM events_default").fetchone()
        assert in_default == (0,), "the migration made a partition for every month with rows"
        duplicate = (
            "INSERT INTO events (event_type, data, idempotency_key) VALUES ('x', '{}', 'e1')"
        )
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(duplicate)

    backend = get_backend(yoyo_url(dsn))
    try:
        with backend.lock():
            newest = backend.to_rollback(read_migrations(str(MIGRATIONS)))[:1]
            backend.rollback_migrations(newest)
    finally:
        backend.connection.close()
    assert _rows(dsn) == rows_before
    with psycopg.connect(dsn) as conn:
        assert schema_snapshot(conn) == schema_before
