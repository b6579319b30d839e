"""The generated functions run against a real database: values and their Python types."""

from __future__ import annotations

import importlib
import ipaddress
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import pytest

from tests.codegen.casekit import generate_case, write_package

LoadCase = Callable[[str], tuple[ModuleType, ModuleType, str]]


@pytest.fixture(scope="session")
def load_case(
    make_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoadCase]:
    """Generate a case into an importable package; return (queries module, models, dsn)."""
    root = tmp_path_factory.mktemp("generated")
    sys.path.insert(0, str(root))
    loaded: dict[str, tuple[ModuleType, ModuleType, str]] = {}

    def load(case: str) -> tuple[ModuleType, ModuleType, str]:
        if case not in loaded:
            dsn = make_database()
            package, errors = generate_case(case, dsn)
            assert errors == []
            name = f"generated_{case}"
            write_package(package, root, name)
            queries = importlib.import_module(f"{name}.queries")
            models = importlib.import_module(f"{name}.models")
            loaded[case] = (queries, models, dsn)
        return loaded[case]

    yield load
    sys.path.remove(str(root))


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[str], Any]]:
    connections: list[asyncpg.Connection] = []

    async def open_connection(dsn: str) -> asyncpg.Connection:
        connection = await asyncpg.connect(dsn)
        connections.append(connection)
        return connection

    yield open_connection
    for connection in connections:
        await connection.close()


async def _new_pipeline(conn: asyncpg.Connection, name: str) -> uuid.UUID:
    pipeline_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO pipelines (name, tags) VALUES ($1, '{a,b}') RETURNING id", name
    )
    return pipeline_id


async def test_get_returns_the_table_model_or_none(load_case: LoadCase, connect: Any) -> None:
    queries, models, dsn = load_case("get_returns_table_model")
    conn = await connect(dsn)
    pipeline_id = await _new_pipeline(conn, "get-model")
    found = await queries.get_pipeline(conn, id=pipeline_id)
    assert isinstance(found, models.Pipeline)
    assert found.id == pipeline_id
    assert found.tags == ["a", "b"]
    assert found.environment == {}
    assert isinstance(found.created_at, datetime)
    assert await queries.get_pipeline(conn, id=uuid.uuid4()) is None


async def test_insert_returning_gives_the_row_and_takes_a_nullable_param(
    load_case: LoadCase, connect: Any
) -> None:
    queries, models, dsn = load_case("insert_returning_always_returns")
    conn = await connect(dsn)
    created = await queries.create_pipeline(conn, name="created", description=None)
    assert isinstance(created, models.Pipeline)
    assert (created.name, created.description, created.retry_attempts) == ("created", None, 0)


async def test_on_conflict_do_nothing_returns_none_the_second_time(
    load_case: LoadCase, connect: Any
) -> None:
    queries, models, dsn = load_case("insert_on_conflict_do_nothing_is_optional")
    conn = await connect(dsn)
    first = await queries.create_plugin_if_absent(
        conn, name="tap-x", plugin_type=models.PluginType.EXTRACTOR, variant="v1"
    )
    again = await queries.create_plugin_if_absent(
        conn, name="tap-x", plugin_type=models.PluginType.EXTRACTOR, variant="v1"
    )
    assert isinstance(first.id, uuid.UUID)
    assert again is None


async def test_exec_returns_the_number_of_rows_affected(load_case: LoadCase, connect: Any) -> None:
    queries, _, dsn = load_case("exec_returns_rows_affected")
    conn = await connect(dsn)
    pipeline_id = await _new_pipeline(conn, "to-delete")
    assert await queries.delete_pipeline(conn, id=pipeline_id) == 1
    assert await queries.delete_pipeline(conn, id=pipeline_id) == 0


async def test_executemany_and_copy_insert_rows_with_json(
    load_case: LoadCase, connect: Any
) -> None:
    many, _, many_dsn = load_case("executemany_takes_param_structs")
    copy, _, copy_dsn = load_case("copy_bulk_rows_in_count_out")
    conn = await connect(many_dsn)
    await many.add_metrics(
        conn,
        params=[
            many.AddMetricsParams(1, "rows", 10.0, {"step": "load"}),
            many.AddMetricsParams(1, "bytes", 2.5, None),
        ],
    )
    assert await conn.fetchval("SELECT count(*) FROM component_metrics") == 2
    copy_conn = await connect(copy_dsn)
    records = [copy.CopyMetricsRecord(7, f"m{i}", float(i), {"i": i}) for i in range(500)]
    assert await copy.copy_metrics(copy_conn, records=records) == 500
    labels = await copy_conn.fetchval(
        "SELECT labels ->> 'i' FROM component_metrics WHERE metric_name = 'm42'"
    )
    assert labels == "42"


async def test_any_takes_a_sequence_and_an_empty_one_works(
    load_case: LoadCase, connect: Any
) -> None:
    queries, _, dsn = load_case("any_array_param_takes_sequence")
    conn = await connect(dsn)
    first = await _new_pipeline(conn, "any-1")
    await _new_pipeline(conn, "any-2")
    assert await queries.get_pipelines_by_ids(conn, ids=[]) == []
    rows = await queries.get_pipelines_by_ids(conn, ids=(first, uuid.uuid4()))
    assert [(r.id, r.name) for r in rows] == [(first, "any-1")]


async def test_enums_come_back_as_the_generated_str_enum(load_case: LoadCase, connect: Any) -> None:
    queries, models, dsn = load_case("enums_in_results_and_params")
    conn = await connect(dsn)
    pipeline_id = await _new_pipeline(conn, "enums")
    await conn.execute(
        "INSERT INTO pipeline_executions (pipeline_id, status) "
        "VALUES ($1, 'failed'), ($1, 'queued')",
        pipeline_id,
    )
    status = models.ExecutionStatus
    failed = await queries.list_by_status(conn, status=status.FAILED)
    assert [type(r.status) for r in failed] == [status]
    both = await queries.list_by_statuses(conn, statuses=[status.FAILED, status.QUEUED])
    assert len(both) == 2
    assert await queries.statuses_of_pipeline(conn, pipeline_id=pipeline_id) == [
        status.FAILED,
        status.QUEUED,
    ]
    assert await queries.statuses_of_pipeline(conn, pipeline_id=uuid.uuid4()) is None


async def test_nested_json_decodes_into_structs_in_one_round_trip(
    load_case: LoadCase, connect: Any
) -> None:
    queries, models, dsn = load_case("jsonb_nested_results")
    conn = await connect(dsn)
    pipeline_id = await _new_pipeline(conn, "nested")
    plugin_id = await conn.fetchval(
        "INSERT INTO plugins (name, plugin_type) VALUES ('tap', 'extractor') RETURNING id"
    )
    for position in (2, 1):
        await conn.execute(
            "INSERT INTO pipeline_steps (pipeline_id, position, plugin_id, configuration) "
            "VALUES ($1, $2, $3, '{\"k\": 1}')",
            pipeline_id,
            position,
            plugin_id,
        )
    found = await queries.get_pipeline_with_steps(conn, id=pipeline_id)
    assert [type(s) for s in found.steps] == [models.PipelineStep] * 2
    assert [s.position for s in found.steps] == [1, 2]
    assert found.steps[0].plugin_id == plugin_id
    assert found.steps[0].configuration == {"k": 1}


async def test_composite_columns_become_models(load_case: LoadCase, connect: Any) -> None:
    queries, models, dsn = load_case("composite_results")
    conn = await connect(dsn)
    pipeline_id = await _new_pipeline(conn, "composite")
    execution_id = await conn.fetchval(
        "INSERT INTO pipeline_executions (pipeline_id, status, cost) VALUES ($1, 'running', 1.50) "
        "RETURNING id",
        pipeline_id,
    )
    rows = await queries.executions_with_pipeline(conn, status=models.ExecutionStatus.RUNNING)
    assert [type(r.pipeline) for r in rows] == [models.Pipeline]
    assert rows[0].pipeline.id == pipeline_id
    assert rows[0].pipeline.environment == {}
    amount = await queries.money_of(conn, id=execution_id)
    assert amount == models.MoneyAmount(Decimal("1.50"), "EUR")


async def test_scalar_types_round_trip(load_case: LoadCase, connect: Any) -> None:
    queries, models, dsn = load_case("scalar_types")
    conn = await connect(dsn)
    created = await queries.add_sample(
        conn,
        payload=b"\x00\x01",
        address=ipaddress.ip_address("10.0.0.1"),
        day=date(2026, 1, 2),
        amount=Decimal("12.345"),
        duration=timedelta(minutes=5),
        small=3,
        ratio=0.5,
        flag=True,
        code="ABC",
    )
    sample = await queries.get_sample(conn, id=created.id)
    assert isinstance(sample, models.Sample)
    assert sample.payload == b"\x00\x01"
    assert sample.address == ipaddress.ip_address("10.0.0.1")
    assert (sample.day, sample.amount, sample.duration) == (
        date(2026, 1, 2),
        Decimal("12.345"),
        timedelta(minutes=5),
    )
    assert (sample.small, sample.ratio, sample.flag, sample.code) == (3, 0.5, True, "ABC")


async def test_keyword_columns_are_renamed_fields(load_case: LoadCase, connect: Any) -> None:
    queries, _, dsn = load_case("views_and_keyword_columns")
    conn = await connect(dsn)
    await conn.execute("""INSERT INTO routes (id, "from", "class") VALUES (1, 'a', 'x')""")
    rows = await queries.list_active(conn, kind="x")
    assert [(r.id, r.from_, r.class_) for r in rows] == [(1, "a", "x")]
    route = await queries.get_route(conn, id=1)
    assert (type(route).__name__, route.from_, route.active) == ("Route", "a", True)


async def test_values_counts_and_json_params(load_case: LoadCase, connect: Any) -> None:
    counts, _, counts_dsn = load_case("value_count_is_non_null")
    json_queries, _, json_dsn = load_case("jsonb_values")
    conn = await connect(counts_dsn)
    assert await counts.count_pipelines(conn) == 0
    json_conn = await connect(json_dsn)
    pipeline_id = await _new_pipeline(json_conn, "json")
    await json_conn.execute("INSERT INTO plugins (name, plugin_type) VALUES ('p', 'loader')")
    environment = {"HOME": "/tmp", "n": [1, 2]}
    assert (
        await json_queries.set_environment(json_conn, id=pipeline_id, environment=environment) == 1
    )
    row = await json_queries.pipeline_environment(json_conn, id=pipeline_id)
    assert row.environment == environment


async def test_script_runs_and_sql_constants_name_their_source(
    load_case: LoadCase, connect: Any
) -> None:
    queries, _, dsn = load_case("script_operation")
    conn = await connect(dsn)
    await conn.execute(
        "INSERT INTO component_metrics (execution_id, metric_name, value) VALUES (1, 'x', 1)"
    )
    assert await queries.reset_metrics(conn) is None
    assert await conn.fetchval("SELECT count(*) FROM component_metrics") == 0
    assert queries.RESET_METRICS.startswith("-- reset_metrics (sql/queries.sql:1)\n")


async def test_generated_queries_run_over_a_pool(load_case: LoadCase) -> None:
    queries, _, dsn = load_case("value_may_find_no_row")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        assert await queries.get_pipeline_name(pool, id=uuid.uuid4()) is None
    finally:
        await pool.close()


def test_generated_package_imports_only_asyncpg_msgspec_and_stdlib() -> None:
    generated = Path(__file__).resolve().parent / "cases"
    allowed = {"asyncpg", "msgspec", "collections", "datetime", "decimal", "enum", "ipaddress"}
    allowed |= {"typing", "uuid", "__future__"}
    for path in generated.glob("*/expected/*.py"):
        for line in path.read_text().splitlines():
            if line.startswith(("import ", "from ")) and not line.startswith("from ."):
                top = line.split()[1].split(".")[0]
                assert top in allowed, f"{path}: {line}"
