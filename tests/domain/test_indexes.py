"""The hot queries are served by the indexes made for them (plans with seq scans disabled)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from etlstore import Database
from etlstore.queries import audit_log, events, pipeline_executions, pipelines, plugins

NOW = datetime.now(UTC)
ID = uuid4()

# (query, its arguments, an index its plan must use)
CASES = [
    (pipeline_executions.CLAIM_PIPELINE_EXECUTIONS, ([ID], 10, "w"),
     "pipeline_executions_pipeline_id_queued_idx"),
    (pipeline_executions.LIST_PIPELINE_EXECUTIONS, (ID, None, None, 10),
     "pipeline_executions_pipeline_id_queued_at_idx"),
    (pipeline_executions.LIST_RUNNING_PIPELINE_EXECUTIONS, (10,),
     "pipeline_executions_running_started_at_idx"),
    (audit_log.LIST_AUDIT_ENTRIES, (None, None, 10), "audit_log_at_id_idx"),
    (audit_log.LIST_AUDIT_ENTRIES_FOR_ENTITY, ("pipelines", "x", NOW, 5, 10),
     "audit_log_entity_type_entity_id_at_id_idx"),
    (audit_log.LIST_AUDIT_ENTRIES_BY_ACTOR, (ID, None, None, 10),
     "audit_log_actor_user_id_at_id_idx"),
    (pipelines.LIST_PIPELINE_STEPS_BY_PLUGIN, (ID, None, 10), "pipeline_steps_plugin_id_id_idx"),
    (plugins.LIST_PLUGINS_BY_TYPE, ("loader", "a", "b", 10),
     "plugins_plugin_type_name_variant_idx"),
    (events.CLAIM_EVENTS, ("c", 10), "events_pending_idx"),
]  # fmt: skip


def _indexes(plan: object) -> set[str]:
    found: set[str] = set()
    if isinstance(plan, dict):
        for key, value in plan.items():
            if key == "Index Name":
                found.add(str(value))
            found |= _indexes(value)
    elif isinstance(plan, list):
        for item in plan:
            found |= _indexes(item)
    return found


@pytest.mark.parametrize(("sql", "args", "index"), CASES, ids=[c[2] for c in CASES])
async def test_the_query_uses_its_index(
    db: Database, sql: str, args: tuple[object, ...], index: str
) -> None:
    async with db.transaction() as tx:
        # Empty tables make a seq scan cheapest; forbid it to see which index would serve.
        await tx.execute("SET LOCAL enable_seqscan = off")
        plan = await tx.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
        # A partition's index stands for the partitioned table's index it was made from.
        declared = await tx.fetchval(
            "SELECT array_agg(DISTINCT coalesce(pg_partition_root(i::regclass), i::regclass)::text)"
            " FROM unnest($1::text[]) AS i",
            sorted(_indexes(json.loads(plan))),
        )
    assert index in declared
