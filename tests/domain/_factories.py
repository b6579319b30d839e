"""Rows for tests to start from, and a snapshot of every table to prove nothing changed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from etlstore import Database
from etlstore.queries import jobs, pipelines, plugins, users
from etlstore.queries.models import Job, Pipeline, Plugin, PluginType, StrategyType
from etlstore.queries.users import CreateUserRow

__all__ = [
    "TABLES",
    "make_job",
    "make_pipeline",
    "make_plugin",
    "make_user",
    "snapshot",
    "walk_pages",
]

_Row = TypeVar("_Row")

TABLES: Final = (
    "users", "roles", "permissions", "user_roles", "role_permissions", "plugins", "dataclasses",
    "pipelines", "pipeline_steps", "jobs", "tags", "job_tags", "components",
    "component_dependencies", "config_versions", "pipeline_executions", "step_executions",
    "job_executions", "component_metrics", "events", "audit_log",
)  # fmt: skip


async def snapshot(db: Database) -> dict[str, str]:
    """Every row of every application table, as canonical JSON text per table."""
    result: dict[str, str] = {}
    for table in TABLES:
        rows = await db.fetchval(
            f"SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text), '[]')::text"
            f" FROM {table} AS t"
        )
        result[table] = str(rows)
    return result


async def make_plugin(
    db: Database,
    name: str = "tap-postgres",
    *,
    variant: str = "default",
    plugin_type: PluginType = PluginType.EXTRACTOR,
) -> Plugin:
    return await plugins.create_plugin(
        db,
        name=name,
        plugin_type=plugin_type,
        variant=variant,
        version="1.0",
        namespace=name.replace("-", "_"),
        settings_schema={},
    )


async def make_pipeline(
    db: Database,
    name: str = "orders",
    *,
    max_concurrent_executions: int = 1,
    retry_attempts: int = 0,
    retry_delay_seconds: int = 0,
    schedule_expression: str | None = None,
    is_paused: bool = False,
) -> Pipeline:
    return await pipelines.create_pipeline(
        db,
        name=name,
        description="",
        environment_variables={},
        schedule_expression=schedule_expression,
        timezone="UTC",
        max_concurrent_executions=max_concurrent_executions,
        timeout_seconds=None,
        retry_attempts=retry_attempts,
        retry_delay_seconds=retry_delay_seconds,
        is_paused=is_paused,
    )


async def make_job(db: Database, name: str = "nightly", *, num_of_retries: int = 0) -> Job:
    return await jobs.create_job(
        db,
        name=name,
        description="",
        num_of_retries=num_of_retries,
        file_logging=False,
        strategy_type=StrategyType.BATCH,
    )


async def make_user(db: Database, username: str = "ada") -> CreateUserRow:
    return await users.create_user(
        db, username=username, email=f"{username}@example.com", password_hash="hash:" + username
    )


async def walk_pages(
    fetch: Callable[[_Row | None], Awaitable[list[_Row]]], limit: int
) -> list[list[_Row]]:
    """Every page of a keyset listing: ``fetch(last row of the previous page or None)``.

    Stops at the first page shorter than ``limit`` (the empty page after an exact fit
    included), so the boundary where the rows end on a page edge is walked too.
    """
    pages: list[list[_Row]] = []
    last: _Row | None = None
    while True:
        page = await fetch(last)
        assert len(page) <= limit
        pages.append(page)
        if len(page) < limit:
            return pages
        last = page[-1]
