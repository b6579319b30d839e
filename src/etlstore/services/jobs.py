"""Create, change, restore and delete jobs with their components, edges and tags.

Each function is one transaction that also writes a configuration version and an audit row.
The database decides what is valid (unique names, limits, references, and the trigger that
rejects dependency cycles); a cycle is re-raised as DependencyCycle naming its components.
"""

from __future__ import annotations

import graphlib
from uuid import UUID

import msgspec

from etlstore._database import Database
from etlstore._transaction import Transaction
from etlstore.errors import CheckViolation
from etlstore.queries import config_versions, jobs
from etlstore.queries.jobs import AddComponentDependenciesParams, UpsertComponentsParams
from etlstore.queries.models import (
    ComponentDependency,
    ComponentStatus,
    ComponentType,
    ConfigEntityType,
    Job,
    StrategyType,
)
from etlstore.services._common import Actor, audit, convert, not_found, record_version
from etlstore.services.errors import DependencyCycle, InvalidInput

__all__ = [
    "ComponentSpec",
    "DependencySpec",
    "JobSpec",
    "SavedJob",
    "add_dependency",
    "delete_job",
    "restore_job_version",
    "save_job",
]

_ENTITY = "jobs"
_CYCLE_CONSTRAINTS = frozenset(
    {"component_dependencies_no_cycle", "component_dependencies_no_self_dependency"}
)


class ComponentSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One node of a job, named uniquely within it."""

    name: str
    component_type: ComponentType
    configuration: dict[str, object] = {}
    status: ComponentStatus = ComponentStatus.ACTIVE
    dataclass_id: UUID | None = None


class DependencySpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An edge, by component names: ``component`` runs after ``depends_on``."""

    component: str
    depends_on: str


class JobSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A job's whole configuration: what a configuration version stores."""

    name: str
    description: str = ""
    num_of_retries: int = 0
    file_logging: bool = False
    strategy_type: StrategyType = StrategyType.BATCH
    tags: list[str] = []
    components: list[ComponentSpec] = []
    dependencies: list[DependencySpec] = []


class SavedJob(msgspec.Struct, frozen=True):
    """The id of the job as written, its configuration read back and its new version number."""

    job_id: UUID
    spec: JobSpec
    version: int


async def save_job(
    db: Database, spec: object, *, actor: Actor, job_id: UUID | None = None
) -> SavedJob:
    """Create a job (no ``job_id``) or replace one's settings, components, edges and tags.

    Components keep their ids while their names stay. InvalidInput for a malformed spec (two
    components with one name, an edge naming no component), NotFound for an unknown ``job_id``,
    DependencyCycle for a cycle; nothing is written in any of these cases.
    """
    valid = convert(spec, JobSpec)
    _check_names(valid)
    async with db.transaction() as tx:
        if job_id is None:
            created = await jobs.create_job(
                tx,
                name=valid.name,
                description=valid.description,
                num_of_retries=valid.num_of_retries,
                file_logging=valid.file_logging,
                strategy_type=valid.strategy_type,
            )
            return await _write(tx, created.id, valid, actor, action="create", before=None)
        before = await _lock(tx, job_id)
        await _update(tx, job_id, valid)
        return await _write(tx, job_id, valid, actor, action="update", before=before)


async def restore_job_version(
    db: Database, job_id: UUID, version: int, *, actor: Actor
) -> SavedJob:
    """Make an earlier version current again, which writes it as a new version."""
    async with db.transaction() as tx:
        before = await _lock(tx, job_id)
        old = await config_versions.get_config_version_by_number(
            tx, entity_type=ConfigEntityType.JOB, entity_id=job_id, version=version
        )
        if old is None:
            raise not_found(f"version {version} of job", job_id)
        spec = convert(old.configuration, JobSpec)
        _check_names(spec)
        await _update(tx, job_id, spec)
        return await _write(
            tx, job_id, spec, actor, action="restore", before=before, restored=version
        )


async def add_dependency(
    db: Database, job_id: UUID, component_id: UUID, depends_on_id: UUID, *, actor: Actor
) -> SavedJob:
    """Make one component of a job run after another, as a new version of the job.

    NotFound for an unknown job or component, InvalidReference for a component of another job,
    DependencyCycle for an edge that would close a cycle.
    """
    async with db.transaction() as tx:
        before = await _lock(tx, job_id)
        names = []
        for id_ in (component_id, depends_on_id):
            component = await jobs.get_component(tx, id=id_)
            if component is None:
                raise not_found("component", id_)
            names.append(component.name)
        try:
            await jobs.add_component_dependency(
                tx, job_id=job_id, component_id=component_id, depends_on_id=depends_on_id
            )
        except CheckViolation as exc:
            if exc.constraint not in _CYCLE_CONSTRAINTS:
                raise
            raise DependencyCycle(
                f"component {names[0]!r} cannot depend on {names[1]!r}: that would close a cycle",
                constraint=exc.constraint,
                components=(names[0], names[1]),
            ) from exc
        spec = await _current_spec(tx, job_id)
        return await _version(tx, job_id, spec, actor, action="update", before=before)


async def delete_job(db: Database, job_id: UUID, *, actor: Actor) -> Job:
    """Delete a job with its components, edges, tags and executions; its versions stay."""
    async with db.transaction() as tx:
        before = await _lock(tx, job_id)
        deleted = await jobs.delete_job(tx, id=job_id)
        if deleted is None:  # pragma: no cover - locked above, so still there
            raise not_found("job", job_id)
        await audit(
            tx,
            actor,
            action="delete",
            entity_type=_ENTITY,
            entity_id=job_id,
            before=before,
            after=None,
        )
        return deleted


def _check_names(spec: JobSpec) -> None:
    """Reject what no constraint can see: a repeated component name, an edge to no component."""
    seen: set[str] = set()
    for i, component in enumerate(spec.components):
        if component.name in seen:
            raise InvalidInput(
                f"component name {component.name!r} is used twice in the job",
                field=f"$.components[{i}].name",
            )
        seen.add(component.name)
    for i, edge in enumerate(spec.dependencies):
        for end in ("component", "depends_on"):
            name: str = getattr(edge, end)
            if name not in seen:
                raise InvalidInput(
                    f"dependency names no component of the job: {name!r}",
                    field=f"$.dependencies[{i}].{end}",
                )


async def _lock(tx: Transaction, job_id: UUID) -> object:
    """Lock the job (serialising its writers); its latest configuration, the audit before."""
    if await jobs.lock_job(tx, id=job_id) is None:
        raise not_found("job", job_id)
    latest = await config_versions.get_latest_config_version(
        tx, entity_type=ConfigEntityType.JOB, entity_id=job_id
    )
    return None if latest is None else latest.configuration


async def _write(
    tx: Transaction,
    job_id: UUID,
    spec: JobSpec,
    actor: Actor,
    *,
    action: str,
    before: object,
    restored: int | None = None,
) -> SavedJob:
    """Components, edges and tags of ``spec``, then the version and the audit row."""
    await jobs.upsert_components(
        tx,
        params=[
            UpsertComponentsParams(
                job_id, c.name, c.component_type, c.configuration, c.status, c.dataclass_id
            )
            for c in spec.components
        ],
    )
    await jobs.delete_components_not_named(
        tx, job_id=job_id, names=[c.name for c in spec.components]
    )
    ids = {c.name: c.id for c in await jobs.list_components(tx, job_id=job_id)}
    await jobs.delete_component_dependencies(tx, job_id=job_id)
    try:
        await jobs.add_component_dependencies(
            tx,
            params=[
                AddComponentDependenciesParams(job_id, ids[d.component], ids[d.depends_on])
                for d in spec.dependencies
            ],
        )
    except CheckViolation as exc:
        if exc.constraint not in _CYCLE_CONSTRAINTS:
            raise
        raise _cycle_error(spec, exc.constraint) from exc
    await _write_tags(tx, job_id, spec.tags)
    current = await _current_spec(tx, job_id)
    return await _version(
        tx, job_id, current, actor, action=action, before=before, restored=restored
    )


async def _update(tx: Transaction, job_id: UUID, spec: JobSpec) -> None:
    await jobs.update_job(
        tx,
        id=job_id,
        name=spec.name,
        description=spec.description,
        num_of_retries=spec.num_of_retries,
        file_logging=spec.file_logging,
        strategy_type=spec.strategy_type,
    )


def _cycle_error(spec: JobSpec, constraint: str | None) -> DependencyCycle:
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for edge in spec.dependencies:
        sorter.add(edge.component, edge.depends_on)
    try:
        sorter.prepare()
    except graphlib.CycleError as cycle:
        names = tuple(cycle.args[1])
        path = " -> ".join(names)
        return DependencyCycle(
            f"job {spec.name!r}: the dependencies form a cycle: {path}",
            constraint=constraint,
            components=names,
        )
    return DependencyCycle(  # pragma: no cover - the database saw a cycle graphlib did not
        f"job {spec.name!r}: the dependencies form a cycle", constraint=constraint, components=()
    )


async def _write_tags(tx: Transaction, job_id: UUID, names: list[str]) -> None:
    wanted = set(names)
    for tag in await jobs.list_job_tags(tx, job_id=job_id):
        if tag.name not in wanted:
            await jobs.remove_job_tag(tx, job_id=job_id, tag_id=tag.id)
    for name in sorted(wanted):
        tag = await jobs.get_tag_by_name(tx, name=name) or await jobs.create_tag(tx, name=name)
        await jobs.add_job_tag(tx, job_id=job_id, tag_id=tag.id)


async def _current_spec(tx: Transaction, job_id: UUID) -> JobSpec:
    """The job's configuration as stored: components by name, edges by names, tags sorted."""
    job = await jobs.get_job_with_components(tx, id=job_id)
    if job is None:  # pragma: no cover - locked or written in this transaction
        raise not_found("job", job_id)
    names = {c.id: c.name for c in job.components}
    tags = await jobs.list_job_tags(tx, job_id=job_id)
    return JobSpec(
        name=job.name,
        description=job.description,
        num_of_retries=job.num_of_retries,
        file_logging=job.file_logging,
        strategy_type=job.strategy_type,
        tags=[t.name for t in tags],
        components=[
            ComponentSpec(
                c.name,
                c.component_type,
                convert(c.configuration, dict[str, object]),
                c.status,
                c.dataclass_id,
            )
            for c in job.components
        ],
        dependencies=sorted(
            (_edge(d, names) for d in job.dependencies),
            key=lambda d: (d.component, d.depends_on),
        ),
    )


def _edge(dependency: ComponentDependency, names: dict[UUID, str]) -> DependencySpec:
    return DependencySpec(names[dependency.component_id], names[dependency.depends_on_id])


async def _version(
    tx: Transaction,
    job_id: UUID,
    spec: JobSpec,
    actor: Actor,
    *,
    action: str,
    before: object,
    restored: int | None = None,
) -> SavedJob:
    version = await record_version(
        tx,
        actor,
        entity_type=ConfigEntityType.JOB,
        audit_entity_type=_ENTITY,
        entity_id=job_id,
        spec=spec,
        action=action,
        before=before,
        restored=restored,
    )
    return SavedJob(job_id, spec, version)
