"""``etlstore partitions``: how the partitioned tables are kept, and their daily maintenance.

The work is done by the database (``maintain_partitions()``, migration 0007) through the
generated queries of sql/partitions.sql; this module runs them as the schema's owner and prints
what they did. Run ``etlstore partitions maintain`` daily (cron, a Kubernetes CronJob): it is
idempotent, and a missed day only means the partitions made ahead of time are used up later.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from etlstore._connect import connect
from etlstore.errors import QueryTimeout
from etlstore.queries import partitions
from etlstore.queries.models import PartitionPolicy

__all__ = ["format_maintenance", "format_partitions", "maintain", "set_policy", "show"]

_TABLES = ("component_metrics", "events", "pipeline_executions")


def _day(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d")


def _retention(policy: PartitionPolicy) -> str:
    if policy.retention is None:
        return "kept forever"
    return f"{policy.retention.days} days, then {policy.retention_action}"


async def _show(dsn: str) -> list[tuple[PartitionPolicy, list[partitions.ListPartitionsRow]]]:
    async with connect(dsn, min_size=1, max_size=1, application_name="etlstore partitions") as db:
        policies = await partitions.list_partition_policies(db)
        return [
            (policy, await partitions.list_partitions(db, table_name=policy.table_name))
            for policy in policies
        ]


def show(dsn: str) -> list[tuple[PartitionPolicy, list[partitions.ListPartitionsRow]]]:
    """Each partitioned table's policy and its partitions."""
    return asyncio.run(_show(dsn))


def format_partitions(
    tables: list[tuple[PartitionPolicy, list[partitions.ListPartitionsRow]]],
) -> str:
    """The tables, their policies and partitions, as ``etlstore partitions`` prints them."""
    lines: list[str] = []
    for policy, parts in tables:
        lines.append(
            f"{policy.table_name}: one partition per {policy.partition_unit} (UTC), "
            f"{policy.premake} ahead, {_retention(policy)}"
        )
        for part in parts:
            span = "default" if part.is_default else f"{_day(part.lower_bound)} .. "
            span += "" if part.is_default else _day(part.upper_bound)
            lines.append(f"  {part.partition_name:<34} {span:<24} ~{part.estimated_rows:,} rows")
    return "\n".join(lines)


async def _maintain(
    dsn: str, at: datetime, attempts: int
) -> list[partitions.MaintainPartitionsRow]:
    async with connect(dsn, min_size=1, max_size=1, application_name="etlstore partitions") as db:
        attempt = 1
        while True:
            try:
                async with db.transaction() as tx:
                    return await partitions.maintain_partitions(tx, at=at)
            except QueryTimeout:
                # A lock not granted within the function's lock_timeout (1 s): a long
                # transaction uses the table. The whole run rolled back; try again shortly.
                if attempt >= attempts:
                    raise
                await asyncio.sleep(attempt)
                attempt += 1


def maintain(
    dsn: str, at: datetime | None = None, *, attempts: int = 5
) -> list[partitions.MaintainPartitionsRow]:
    """Create future partitions and retire expired ones as of ``at`` (now), in one transaction.

    A run that cannot get a table's lock within 1 s is rolled back and tried again, ``attempts``
    times in all, 1, 2, 3 ... s apart; the last QueryTimeout is raised.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    return asyncio.run(_maintain(dsn, at or datetime.now(UTC), attempts))


def format_maintenance(actions: list[partitions.MaintainPartitionsRow]) -> str:
    """What maintenance did, one line per action."""
    if not actions:
        return "nothing to do: every partition needed exists and none has expired"
    lines = []
    for action in actions:
        span = f"{_day(action.lower_bound)} .. {_day(action.upper_bound)}"
        rows = f" ({action.affected_rows:,} rows)" if action.affected_rows else ""
        name = action.partition_name or "-"
        lines.append(f"{action.table_name}: {action.action} {name} [{span}]{rows}")
    return "\n".join(lines)


async def _set_policy(
    dsn: str,
    table: str,
    *,
    unit: str | None,
    premake: int | None,
    retention: timedelta | None,
    keep_forever: bool,
    action: str | None,
) -> PartitionPolicy:
    async with connect(dsn, min_size=1, max_size=1, application_name="etlstore partitions") as db:
        current = {p.table_name: p for p in await partitions.list_partition_policies(db)}
        if table not in current:
            raise ValueError(f"{table} is not partitioned; partitioned: {', '.join(_TABLES)}")
        old = current[table]
        updated = await partitions.update_partition_policy(
            db,
            table_name=table,
            partition_unit=unit or old.partition_unit,
            premake=old.premake if premake is None else premake,
            retention=None if keep_forever else (retention or old.retention),
            retention_action=action or old.retention_action,
        )
        if updated is None:  # pragma: no cover - deleted between the two statements
            raise ValueError(f"{table} is not partitioned")
        return updated


def set_policy(
    dsn: str,
    table: str,
    *,
    unit: str | None = None,
    premake: int | None = None,
    retention: timedelta | None = None,
    keep_forever: bool = False,
    action: str | None = None,
) -> PartitionPolicy:
    """Change the given parts of a table's policy; the others stay as they are."""
    return asyncio.run(
        _set_policy(
            dsn,
            table,
            unit=unit,
            premake=premake,
            retention=retention,
            keep_forever=keep_forever,
            action=action,
        )
    )
