"""The nine operations with SQLAlchemy 2 on asyncpg: the async ORM, and Core.

Written the way SQLAlchemy's documentation shows: a session (ORM) or a connection (Core) per
unit of work, which is a transaction (BEGIN ... COMMIT or ROLLBACK). The claim's
``FOR UPDATE SKIP LOCKED`` capacity query has no natural ORM form, so both use ``text()`` with
the generated SQL, as an application would.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, Final, cast

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Table,
    Text,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, ENUM, JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload
from sqlalchemy.types import DateTime

from benchmarks._alternatives import (
    NEW_PIPELINE,
    POOL_SIZE,
    Implementation,
    Inputs,
    new_pipeline_name,
    worker_id,
)
from etlstore.queries import pipeline_executions

__all__ = ["Core", "Orm", "open_sqlalchemy"]

_EXECUTION_STATUS: Final = ENUM(
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    name="execution_status",
    create_type=False,
)
_TRIGGER_KIND: Final = ENUM("user", "schedule", "api", name="trigger_kind", create_type=False)
_PLUGIN_TYPE: Final = ENUM(
    "extractor", "loader", "transformer", "utility", name="plugin_type", create_type=False
)
_TS: Final = DateTime(timezone=True)


class _Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONB,
        datetime: _TS,
        uuid.UUID: UUID,
    }


class PluginRow(_Base):
    __tablename__ = "plugins"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str]
    plugin_type: Mapped[str] = mapped_column(_PLUGIN_TYPE)
    variant: Mapped[str]
    version: Mapped[str]
    namespace: Mapped[str]
    settings_schema: Mapped[dict[str, Any]]
    is_enabled: Mapped[bool]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class StepRow(_Base):
    __tablename__ = "pipeline_steps"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pipelines.id"))
    position: Mapped[int]
    plugin_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("plugins.id"))
    configuration: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    plugin: Mapped[PluginRow] = relationship()


class PipelineRow(_Base):
    __tablename__ = "pipelines"
    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, server_default=text("gen_random_uuid()")
    )
    name: Mapped[str]
    description: Mapped[str]
    environment_variables: Mapped[dict[str, Any]]
    schedule_expression: Mapped[str | None]
    timezone: Mapped[str]
    max_concurrent_executions: Mapped[int]
    timeout_seconds: Mapped[int | None]
    retry_attempts: Mapped[int]
    retry_delay_seconds: Mapped[int]
    is_paused: Mapped[bool]
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    steps: Mapped[list[StepRow]] = relationship(order_by=StepRow.position)


class ExecutionRow(_Base):
    __tablename__ = "pipeline_executions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pipelines.id"))
    status: Mapped[str] = mapped_column(_EXECUTION_STATUS)
    attempt: Mapped[int] = mapped_column(server_default=text("1"))
    triggered_by: Mapped[str] = mapped_column(_TRIGGER_KIND)
    triggered_by_user_id: Mapped[uuid.UUID | None]
    idempotency_key: Mapped[str | None]
    queued_at: Mapped[datetime]
    claimed_by: Mapped[str | None]
    claimed_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    rows_processed: Mapped[int] = mapped_column(BigInteger)
    error: Mapped[str | None]
    context: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'"))
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class PermissionRow(_Base):
    __tablename__ = "permissions"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    code: Mapped[str]
    description: Mapped[str]


class UserRoleRow(_Base):
    __tablename__ = "user_roles"
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    role_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class RolePermissionRow(_Base):
    __tablename__ = "role_permissions"
    role_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    permission_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class AuditRow(_Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    actor_user_id: Mapped[uuid.UUID | None]
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    entity_type: Mapped[str] = mapped_column(Text)
    entity_id: Mapped[str] = mapped_column(Text)
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    at: Mapped[datetime] = mapped_column(server_default=text("now()"))


_LOCK_QUEUED: Final = text(
    pipeline_executions.LOCK_PIPELINES_WITH_QUEUED_EXECUTIONS.replace("$1", ":limit")
)
_CLAIM: Final = text(
    pipeline_executions.CLAIM_PIPELINE_EXECUTIONS.replace("$1", ":ids")
    .replace("$2", ":limit")
    .replace("$3", ":worker")
).bindparams(bindparam("ids", type_=ARRAY(UUID())))
_PERMISSION_IDS: Final = (
    select(RolePermissionRow.permission_id)
    .join(UserRoleRow, UserRoleRow.role_id == RolePermissionRow.role_id)
    .where(UserRoleRow.user_id == bindparam("user_id"))
)
_P: Final = cast("Table", PipelineRow.__table__)
_E: Final = cast("Table", ExecutionRow.__table__)
_S: Final = cast("Table", StepRow.__table__)
_PL: Final = cast("Table", PluginRow.__table__)
_A: Final = cast("Table", AuditRow.__table__)
_PERMISSIONS: Final = cast("Table", PermissionRow.__table__)


class Orm(Implementation):
    """SQLAlchemy 2 async ORM: one ``AsyncSession`` per operation."""

    name = "sqlalchemy_orm"

    def __init__(self, inputs: Inputs, engine: AsyncEngine) -> None:
        super().__init__(inputs)
        self.engine = engine
        self.session = async_sessionmaker(engine, expire_on_commit=False)

    async def get(self, i: int, task: int) -> object:
        async with self.session() as s:
            return await s.get(PipelineRow, self.inputs.pipeline(i))

    async def list_page(self, i: int, task: int) -> object:
        query = (
            select(ExecutionRow)
            .where(ExecutionRow.pipeline_id == self.inputs.pipeline(i))
            .order_by(ExecutionRow.queued_at.desc(), ExecutionRow.id.desc())
            .limit(50)
        )
        async with self.session() as s:
            return (await s.scalars(query)).all()

    async def create(self, i: int, task: int) -> object:
        row = PipelineRow(name=new_pipeline_name(), **NEW_PIPELINE)
        async with self.session() as s, s.begin():
            s.add(row)
        return row

    async def bulk_1000(self, i: int, task: int) -> object:
        async with self.session() as s, s.begin():
            await s.execute(insert(ExecutionRow), list(self.inputs.bulk_dicts))
        return None

    async def nested(self, i: int, task: int) -> object:
        query = (
            select(PipelineRow)
            .where(PipelineRow.id == self.inputs.pipeline(i))
            .options(selectinload(PipelineRow.steps).joinedload(StepRow.plugin))
        )
        async with self.session() as s:
            return (await s.scalars(query)).first()

    async def claim(self, i: int, task: int) -> object:
        async with self.session() as s, s.begin():
            locked = (await s.execute(_LOCK_QUEUED, {"limit": 1})).scalars().all()
            if not locked:
                return []
            params = {"ids": list(locked), "worker": worker_id(task), "limit": 1}
            return (await s.execute(_CLAIM, params)).all()

    async def transaction(self, i: int, task: int) -> object:
        async with self.session() as s, s.begin():
            pipeline = await s.get(PipelineRow, self.inputs.pipeline(i), with_for_update=True)
            assert pipeline is not None
            pipeline.is_paused = False
            await s.flush()
            entry = AuditRow(
                actor="bench",
                action="update",
                entity_type="pipeline",
                entity_id=str(pipeline.id),
                after={"is_paused": False},
            )
            s.add(entry)
        return entry

    async def permissions(self, i: int, task: int) -> object:
        query = (
            select(PermissionRow)
            .where(PermissionRow.id.in_(_PERMISSION_IDS))
            .order_by(PermissionRow.code)
        )
        async with self.session() as s:
            return (await s.scalars(query, {"user_id": self.inputs.user(i)})).all()

    async def acquire(self, i: int, task: int) -> object:
        async with self.session() as s:
            await s.connection()
        return None

    async def close(self) -> None:
        await self.engine.dispose()


class Core(Implementation):
    """SQLAlchemy 2 Core: ``async with engine.connect()`` and table expressions."""

    name = "sqlalchemy_core"

    def __init__(self, inputs: Inputs, engine: AsyncEngine) -> None:
        super().__init__(inputs)
        self.engine = engine

    async def get(self, i: int, task: int) -> object:
        async with self.engine.connect() as c:
            return (await c.execute(select(_P).where(_P.c.id == self.inputs.pipeline(i)))).first()

    async def list_page(self, i: int, task: int) -> object:
        query = (
            select(_E)
            .where(_E.c.pipeline_id == self.inputs.pipeline(i))
            .order_by(_E.c.queued_at.desc(), _E.c.id.desc())
            .limit(50)
        )
        async with self.engine.connect() as c:
            return (await c.execute(query)).all()

    async def create(self, i: int, task: int) -> object:
        query = insert(_P).values(name=new_pipeline_name(), **NEW_PIPELINE).returning(*_P.c)
        async with self.engine.begin() as c:
            return (await c.execute(query)).one()

    async def bulk_1000(self, i: int, task: int) -> object:
        async with self.engine.begin() as c:
            await c.execute(insert(_E), list(self.inputs.bulk_dicts))
        return None

    async def nested(self, i: int, task: int) -> object:
        query = (
            select(_P, _S, _PL)
            .outerjoin(_S, _S.c.pipeline_id == _P.c.id)
            .outerjoin(_PL, _PL.c.id == _S.c.plugin_id)
            .where(_P.c.id == self.inputs.pipeline(i))
            .order_by(_S.c.position)
        )
        async with self.engine.connect() as c:
            return (await c.execute(query)).all()

    async def claim(self, i: int, task: int) -> object:
        async with self.engine.begin() as c:
            locked = (await c.execute(_LOCK_QUEUED, {"limit": 1})).scalars().all()
            if not locked:
                return []
            params = {"ids": list(locked), "worker": worker_id(task), "limit": 1}
            return (await c.execute(_CLAIM, params)).all()

    async def transaction(self, i: int, task: int) -> object:
        pipeline_id = self.inputs.pipeline(i)
        async with self.engine.begin() as c:
            await c.execute(
                select(_P).where(_P.c.id == pipeline_id).with_for_update(key_share=True)
            )
            await c.execute(
                update(_P).where(_P.c.id == pipeline_id).values(is_paused=False).returning(*_P.c)
            )
            entry = insert(_A).values(
                actor="bench",
                action="update",
                entity_type="pipeline",
                entity_id=str(pipeline_id),
                after={"is_paused": False},
            )
            return (await c.execute(entry.returning(*_A.c))).one()

    async def permissions(self, i: int, task: int) -> object:
        query = (
            select(_PERMISSIONS)
            .where(_PERMISSIONS.c.id.in_(_PERMISSION_IDS))
            .order_by(_PERMISSIONS.c.code)
        )
        async with self.engine.connect() as c:
            return (await c.execute(query, {"user_id": self.inputs.user(i)})).all()

    async def acquire(self, i: int, task: int) -> object:
        async with self.engine.connect():
            return None

    async def close(self) -> None:
        await self.engine.dispose()


def _engine(dsn: str) -> AsyncEngine:
    url = "postgresql+asyncpg://" + dsn.split("://", 1)[1]
    return create_async_engine(url, pool_size=POOL_SIZE, max_overflow=0)


async def open_sqlalchemy(dsn: str, inputs: Inputs) -> list[Implementation]:
    """ORM and Core, each on an engine of its own (same pool size as the others)."""
    return [Orm(inputs, _engine(dsn)), Core(inputs, _engine(dsn))]
