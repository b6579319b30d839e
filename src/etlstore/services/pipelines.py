"""Create, change, restore and delete pipelines with their steps, versioned and audited.

Each function is one transaction: the pipeline, its steps, a new configuration version and an
audit row are written together or not at all. Limits, unique names and plugin references are
checked by the database's constraints (Conflict, CheckViolation, InvalidReference).
"""

from __future__ import annotations

from uuid import UUID

import msgspec

from etlstore._database import Database
from etlstore._transaction import Transaction
from etlstore.queries import config_versions, pipelines
from etlstore.queries.models import ConfigEntityType, Pipeline
from etlstore.queries.pipelines import GetPipelineWithStepsRow, UpsertPipelineStepsParams
from etlstore.services._common import Actor, audit, convert, not_found, record_version

__all__ = [
    "PipelineSpec",
    "SavedPipeline",
    "StepSpec",
    "delete_pipeline",
    "restore_pipeline_version",
    "save_pipeline",
]

_ENTITY = "pipelines"


class StepSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One step: the plugin it runs and the plugin's settings."""

    plugin_id: UUID
    configuration: dict[str, object] = {}


class PipelineSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A pipeline's whole configuration: its settings and its steps in order.

    This is what a configuration version stores, and what a restore reads back.
    """

    name: str
    description: str = ""
    environment_variables: dict[str, str] = {}
    schedule_expression: str | None = None
    timezone: str = "UTC"
    max_concurrent_executions: int = 1
    timeout_seconds: int | None = None
    retry_attempts: int = 0
    retry_delay_seconds: int = 60
    is_paused: bool = False
    steps: list[StepSpec] = []


class SavedPipeline(msgspec.Struct, frozen=True):
    """A pipeline as written (with its steps and their plugins) and its new version number."""

    pipeline: GetPipelineWithStepsRow
    version: int


async def save_pipeline(
    db: Database, spec: object, *, actor: Actor, pipeline_id: UUID | None = None
) -> SavedPipeline:
    """Create a pipeline (no ``pipeline_id``) or replace one's settings and steps.

    ``spec`` is a PipelineSpec or its builtins (e.g. decoded JSON); a malformed one raises
    InvalidInput naming the field. An unknown ``pipeline_id`` raises NotFound.
    """
    valid = convert(spec, PipelineSpec)
    async with db.transaction() as tx:
        if pipeline_id is None:
            created = await _create(tx, valid)
            return await _write(tx, created.id, valid, actor, action="create", before=None)
        before = await _lock(tx, pipeline_id)
        await _update(tx, pipeline_id, valid)
        return await _write(tx, pipeline_id, valid, actor, action="update", before=before)


async def restore_pipeline_version(
    db: Database, pipeline_id: UUID, version: int, *, actor: Actor
) -> SavedPipeline:
    """Make an earlier version current again, which writes it as a new version.

    NotFound for an unknown pipeline or version; a plugin deleted since then is an
    InvalidReference and nothing is written.
    """
    async with db.transaction() as tx:
        before = await _lock(tx, pipeline_id)
        old = await config_versions.get_config_version_by_number(
            tx, entity_type=ConfigEntityType.PIPELINE, entity_id=pipeline_id, version=version
        )
        if old is None:
            raise not_found(f"version {version} of pipeline", pipeline_id)
        spec = convert(old.configuration, PipelineSpec)
        await _update(tx, pipeline_id, spec)
        return await _write(
            tx, pipeline_id, spec, actor, action="restore", before=before, restored=version
        )


async def delete_pipeline(db: Database, pipeline_id: UUID, *, actor: Actor) -> Pipeline:
    """Delete a pipeline with its steps and executions; its versions stay for the audit."""
    async with db.transaction() as tx:
        before = await _lock(tx, pipeline_id)
        deleted = await pipelines.delete_pipeline(tx, id=pipeline_id)
        if deleted is None:  # pragma: no cover - locked above, so still there
            raise not_found("pipeline", pipeline_id)
        await audit(
            tx,
            actor,
            action="delete",
            entity_type=_ENTITY,
            entity_id=pipeline_id,
            before=before,
            after=None,
        )
        return deleted


async def _lock(tx: Transaction, pipeline_id: UUID) -> object:
    """Lock the pipeline (serialising its writers); its latest configuration, the audit before."""
    if await pipelines.lock_pipeline(tx, id=pipeline_id) is None:
        raise not_found("pipeline", pipeline_id)
    latest = await config_versions.get_latest_config_version(
        tx, entity_type=ConfigEntityType.PIPELINE, entity_id=pipeline_id
    )
    return None if latest is None else latest.configuration


async def _create(tx: Transaction, spec: PipelineSpec) -> Pipeline:
    return await pipelines.create_pipeline(
        tx,
        name=spec.name,
        description=spec.description,
        environment_variables=spec.environment_variables,
        schedule_expression=spec.schedule_expression,
        timezone=spec.timezone,
        max_concurrent_executions=spec.max_concurrent_executions,
        timeout_seconds=spec.timeout_seconds,
        retry_attempts=spec.retry_attempts,
        retry_delay_seconds=spec.retry_delay_seconds,
        is_paused=spec.is_paused,
    )


async def _update(tx: Transaction, pipeline_id: UUID, spec: PipelineSpec) -> None:
    await pipelines.update_pipeline(
        tx,
        id=pipeline_id,
        name=spec.name,
        description=spec.description,
        environment_variables=spec.environment_variables,
        schedule_expression=spec.schedule_expression,
        timezone=spec.timezone,
        max_concurrent_executions=spec.max_concurrent_executions,
        timeout_seconds=spec.timeout_seconds,
        retry_attempts=spec.retry_attempts,
        retry_delay_seconds=spec.retry_delay_seconds,
        is_paused=spec.is_paused,
    )


async def _write(
    tx: Transaction,
    pipeline_id: UUID,
    spec: PipelineSpec,
    actor: Actor,
    *,
    action: str,
    before: object,
    restored: int | None = None,
) -> SavedPipeline:
    """Steps by position, then the new version and the audit row; the pipeline as written."""
    await pipelines.upsert_pipeline_steps(
        tx,
        params=[
            UpsertPipelineStepsParams(pipeline_id, position, step.plugin_id, step.configuration)
            for position, step in enumerate(spec.steps)
        ],
    )
    await pipelines.delete_pipeline_steps_after(
        tx, pipeline_id=pipeline_id, last_position=len(spec.steps) - 1
    )
    version = await record_version(
        tx,
        actor,
        entity_type=ConfigEntityType.PIPELINE,
        audit_entity_type=_ENTITY,
        entity_id=pipeline_id,
        spec=spec,
        action=action,
        before=before,
        restored=restored,
    )
    written = await pipelines.get_pipeline_with_steps(tx, id=pipeline_id)
    if written is None:  # pragma: no cover - written above in this transaction
        raise not_found("pipeline", pipeline_id)
    return SavedPipeline(written, version)
