"""sql/component_metrics.sql: bulk COPY of measurements and aggregates over a window."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from etlstore import Database
from etlstore.errors import InvalidReference
from etlstore.queries import component_metrics as metrics
from etlstore.queries import jobs
from etlstore.queries.component_metrics import CopyComponentMetricsRecord
from etlstore.queries.models import ComponentStatus, ComponentType

from ._factories import make_job

START = datetime(2026, 1, 1, tzinfo=UTC)


async def _component(db: Database, job_id: UUID, name: str) -> UUID:
    component = await jobs.create_component(
        db,
        job_id=job_id,
        name=name,
        component_type=ComponentType.LOADER,
        configuration={},
        status=ComponentStatus.ACTIVE,
        dataclass_id=None,
    )
    return component.id


async def test_copy_stores_a_large_batch_and_aggregates_match_python(db: Database) -> None:
    job = await make_job(db)
    components = {name: await _component(db, job.id, name) for name in ["b", "a"]}
    rng = random.Random(5)
    records = [
        CopyComponentMetricsRecord(
            components[rng.choice("ab")],
            None,
            rng.choice(["latency_ms", "rows_per_second"]),
            rng.uniform(0, 100),
            START + timedelta(seconds=rng.randrange(0, 7200)),
        )
        for _ in range(50_000)
    ]
    assert await metrics.copy_component_metrics(db, records=records) == 50_000

    since, until = START + timedelta(minutes=30), START + timedelta(minutes=90)
    rows = await metrics.list_job_component_metric_aggregates(
        db, job_id=job.id, since=since, until=until
    )

    expected: dict[tuple[UUID, str], list[float]] = defaultdict(list)
    for r in records:
        if since <= r.recorded_at < until:  # half-open, like the query
            expected[(r.component_id, r.metric_name)].append(r.value)
    names = {v: k for k, v in components.items()}
    assert [(r.component_name, r.metric_name) for r in rows] == sorted(
        (names[c], m) for c, m in expected
    )
    for row in rows:
        values = expected[(row.component_id, row.metric_name)]
        assert row.samples == len(values)
        assert row.min_value == min(values)
        assert row.max_value == max(values)
        assert row.sum_value == pytest.approx(sum(values))
        assert row.avg_value == pytest.approx(sum(values) / len(values))
    one = await metrics.list_component_metric_aggregates(
        db, component_id=components["a"], since=since, until=until
    )
    assert [(r.metric_name, r.samples) for r in one] == [
        (r.metric_name, r.samples) for r in rows if r.component_id == components["a"]
    ]


async def test_a_window_includes_its_start_and_excludes_its_end(db: Database) -> None:
    job = await make_job(db)
    component = await _component(db, job.id, "a")
    await metrics.copy_component_metrics(
        db,
        records=[
            CopyComponentMetricsRecord(component, None, "m", value, START + timedelta(minutes=m))
            for m, value in [(0, 1.0), (10, 2.0), (20, 4.0)]
        ],
    )
    series = await metrics.list_component_metrics(
        db,
        component_id=component,
        metric_name="m",
        since=START,
        until=START + timedelta(minutes=20),
        limit=10,
    )
    assert [p.value for p in series] == [1.0, 2.0]


async def test_one_metric_per_execution_and_unknown_components_fail_the_batch(
    db: Database,
) -> None:
    job = await make_job(db)
    component = await _component(db, job.id, "a")
    execution_id = await db.fetchval(
        "INSERT INTO job_executions (job_id, triggered_by) VALUES ($1, 'api') RETURNING id", job.id
    )
    made = await metrics.create_component_metric(
        db, component_id=component, job_execution_id=execution_id, metric_name="m", value=3.0
    )
    assert await metrics.get_component_metric(db, id=made.id) == made
    [aggregate] = await metrics.list_job_execution_metric_aggregates(
        db, job_execution_id=execution_id
    )
    assert (aggregate.samples, aggregate.sum_value) == (1, 3.0)
    with pytest.raises(InvalidReference):
        await metrics.copy_component_metrics(
            db,
            records=[
                CopyComponentMetricsRecord(component, None, "m", 1.0, START),
                CopyComponentMetricsRecord(uuid4(), None, "m", 1.0, START),
            ],
        )
    assert await metrics.delete_component_metric(db, id=made.id) == made
    assert await metrics.delete_component_metric(db, id=made.id) is None
