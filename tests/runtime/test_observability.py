"""Per-query counters, the slow-query log, DEBUG logging and the on_query hook."""

from __future__ import annotations

import logging

import pytest

import etlstore
from etlstore._observability import QueryObserver, query_name
from etlstore.errors import InvalidValue

_PARAMETER = "param-5be0a2"


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        ("-- get_pipeline (sql/pipelines.sql:4)\nSELECT 1", "get_pipeline"),
        ("-- list_steps (sql/steps.sql:10)\n", "list_steps"),
        ("-- count_runs", "count_runs"),
        ("SELECT 1", "(unnamed)"),
        ("--get_x (sql/x.sql:1)\nSELECT 1", "(unnamed)"),
        ("-- not a name\nSELECT 1", "(unnamed)"),
        ("-- \nSELECT 1", "(unnamed)"),
    ],
)
def test_query_name_comes_from_the_generated_comment_line(sql: str, name: str) -> None:
    assert query_name(sql) == name


async def test_slow_queries_are_logged_at_warning_with_name_and_duration_only(
    runtime_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="etlstore")
    async with etlstore.connect(runtime_dsn, max_size=1, slow_query_s=0.0) as db:
        await db.fetchval("-- echo_value (sql/echo.sql:1)\nSELECT $1::text", _PARAMETER)
    [record] = [r for r in caplog.records if r.name == "etlstore.queries"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("slow query echo_value took ")
    assert _PARAMETER not in caplog.text


async def test_fast_queries_are_not_logged_as_slow(
    db: etlstore.Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="etlstore")
    await db.fetchval("SELECT 1")
    assert not [r for r in caplog.records if r.name == "etlstore.queries"]


async def test_every_query_is_logged_at_debug_when_enabled(
    db: etlstore.Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="etlstore.queries")
    await db.fetchval("-- echo_value (sql/echo.sql:1)\nSELECT $1::text", _PARAMETER)
    with pytest.raises(InvalidValue):
        await db.fetchval("-- divide (sql/echo.sql:5)\nSELECT 1 / $1", 0)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert messages[0].startswith("query echo_value took ")
    assert messages[1].startswith("query divide took ")
    assert messages[1].endswith("and failed with InvalidValue")
    assert _PARAMETER not in caplog.text


async def test_on_query_hooks_receive_name_duration_and_error(runtime_dsn: str) -> None:
    seen: list[tuple[str, float, BaseException | None]] = []
    async with etlstore.connect(
        runtime_dsn, max_size=1, on_query=[lambda *event: seen.append(event)]
    ) as db:
        await db.fetchval("-- one (t)\nSELECT 1")
        with pytest.raises(etlstore.errors.QueryTimeout):
            await db.fetchval("-- sleepy (t)\nSELECT pg_sleep(1)", timeout=0.01)
    assert [(name, type(error)) for name, _, error in seen] == [
        ("one", type(None)),
        ("sleepy", etlstore.errors.QueryTimeout),
    ]
    assert all(duration > 0 for _, duration, _ in seen)


async def test_a_failing_hook_is_logged_and_does_not_fail_the_query(
    runtime_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(name: str, duration_s: float, error: BaseException | None) -> None:
        raise RuntimeError("exporter down")

    async with etlstore.connect(runtime_dsn, max_size=1, on_query=[broken]) as db:
        assert await db.fetchval("SELECT 7") == 7
    assert "on_query hook" in caplog.text


def test_counters_aggregate_by_name_across_sql_strings() -> None:
    observer = QueryObserver(slow_query_s=None)
    observer.record("-- a (x)\nSELECT 1", 0.002, None)
    observer.record("-- a (y)\nSELECT 2", 0.004, ValueError())
    observer.record("SELECT 3", 0.001, None)
    stats = observer.snapshot()
    assert (stats["a"].calls, stats["a"].errors, stats["a"].max_s) == (2, 1, 0.004)
    assert stats["a"].total_s == pytest.approx(0.006)
    assert stats["(unnamed)"].calls == 1
