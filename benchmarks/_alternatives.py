"""The same nine operations done by etlstore and by the data layers it is compared with.

Every implementation runs the same statements on the same data and returns typed rows where
its library does so naturally: etlstore and hand-written asyncpg build the same msgspec Structs
(hand-written code reuses the generated SQL text, so both send identical statements and only
the client side differs), psycopg returns tuples, SQLAlchemy ORM objects and Core rows
(``_sqlalchemy``). Each op takes the call number ``i`` (which row to touch) and ``task`` (which
of the concurrent tasks calls: only the held connections care).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID, uuid4

import asyncpg
import msgspec
import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

import etlstore
from etlstore.queries import audit_log, pipeline_executions, pipelines, users
from etlstore.queries.models import (
    AuditLog,
    ExecutionStatus,
    Pipeline,
    PipelineExecution,
    PipelineStep,
    Plugin,
    TriggerKind,
)
from etlstore.queries.pipeline_executions import CopyPipelineExecutionsRecord
from etlstore.queries.users import ListUserPermissionsRow

__all__ = [
    "BULK_COLUMNS",
    "NEW_PIPELINE",
    "POOL_SIZE",
    "Implementation",
    "Inputs",
    "new_pipeline_name",
    "open_asyncpg",
    "open_etlstore",
    "open_psycopg",
    "worker_id",
]

#: Connections of every pool (and held connections): one per concurrent task.
POOL_SIZE: Final = 8
BULK_ROWS: Final = 1_000
BULK_COLUMNS: Final = (
    "pipeline_id",
    "status",
    "triggered_by",
    "queued_at",
    "started_at",
    "finished_at",
    "rows_processed",
    "error",
)
_OBJECT: Final = msgspec.json.Decoder(object)
_STEPS: Final = msgspec.json.Decoder(list[tuple[PipelineStep, Plugin]])


@dataclass(frozen=True)
class Inputs:
    """What the operations work on: seeded ids, and the rows of a bulk insert, built once."""

    pipeline_ids: Sequence[UUID]
    user_ids: Sequence[UUID]
    bulk_rows: Sequence[tuple[object, ...]]
    bulk_dicts: Sequence[dict[str, object]]
    bulk_records: Sequence[CopyPipelineExecutionsRecord]

    @staticmethod
    def build(pipeline_ids: Sequence[UUID], user_ids: Sequence[UUID]) -> Inputs:
        now = datetime.now(UTC)
        # The generated COPY's records; its columns are BULK_COLUMNS, so the plain rows follow.
        records = [
            CopyPipelineExecutionsRecord(
                pipeline_ids[n % len(pipeline_ids)],
                ExecutionStatus.SUCCEEDED,
                TriggerKind.API,
                now - timedelta(minutes=5),
                now - timedelta(minutes=4),
                now,
                n,
                "bench-bulk",
            )
            for n in range(BULK_ROWS)
        ]
        rows: list[tuple[object, ...]] = [
            (r.pipeline_id, r.status.value, r.triggered_by.value, *msgspec.structs.astuple(r)[3:])
            for r in records
        ]
        assert CopyPipelineExecutionsRecord.__struct_fields__ == BULK_COLUMNS
        dicts = [dict(zip(BULK_COLUMNS, row, strict=True)) for row in rows]
        return Inputs(pipeline_ids, user_ids, rows, dicts, records)

    def pipeline(self, i: int) -> UUID:
        return self.pipeline_ids[i % len(self.pipeline_ids)]

    def user(self, i: int) -> UUID:
        return self.user_ids[i % len(self.user_ids)]


class Implementation(ABC):
    """One way of doing the nine operations; ``name`` keys the results."""

    name: str

    def __init__(self, inputs: Inputs) -> None:
        self.inputs = inputs

    @abstractmethod
    async def get(self, i: int, task: int) -> object: ...
    @abstractmethod
    async def list_page(self, i: int, task: int) -> object: ...
    @abstractmethod
    async def create(self, i: int, task: int) -> object: ...
    @abstractmethod
    async def bulk_1000(self, i: int, task: int) -> object: ...
    @abstractmethod
    async def nested(self, i: int, task: int) -> object: ...
    @abstractmethod
    async def claim(self, i: int, task: int) -> object: ...
    @abstractmethod
    async def transaction(self, i: int, task: int) -> object: ...
    @abstractmethod
    async def permissions(self, i: int, task: int) -> object: ...
    @abstractmethod
    async def acquire(self, i: int, task: int) -> object: ...
    @abstractmethod
    async def close(self) -> None: ...


def worker_id(task: int) -> str:
    """The worker id of concurrent task ``task`` (the cleanup requeues by its prefix)."""
    return f"bench-worker-{task}"


def new_pipeline_name() -> str:
    """A fresh pipeline name (the cleanup deletes ``bench-%``)."""
    return f"bench-{uuid4().hex}"


#: create_pipeline's arguments after the name, in its parameter order.
NEW_PIPELINE: Final[dict[str, object]] = {
    "description": "benchmark",
    "environment_variables": {"TARGET": "warehouse"},
    "schedule_expression": None,
    "timezone": "UTC",
    "max_concurrent_executions": 1,
    "timeout_seconds": None,
    "retry_attempts": 0,
    "retry_delay_seconds": 60,
    "is_paused": True,
}


class Etlstore(Implementation):
    """etlstore's generated functions through ``db`` (and ``db.transaction()``)."""

    name = "etlstore"

    def __init__(self, inputs: Inputs, db: etlstore.Database) -> None:
        super().__init__(inputs)
        self.db = db

    async def get(self, i: int, task: int) -> object:
        return await pipelines.get_pipeline(self.db, id=self.inputs.pipeline(i))

    async def list_page(self, i: int, task: int) -> object:
        return await pipeline_executions.list_pipeline_executions(
            self.db,
            pipeline_id=self.inputs.pipeline(i),
            before_queued_at=None,
            before_id=None,
            limit=50,
        )

    async def create(self, i: int, task: int) -> object:
        return await pipelines.create_pipeline(
            self.db,
            name=new_pipeline_name(),
            description="benchmark",
            environment_variables={"TARGET": "warehouse"},
            schedule_expression=None,
            timezone="UTC",
            max_concurrent_executions=1,
            timeout_seconds=None,
            retry_attempts=0,
            retry_delay_seconds=60,
            is_paused=True,
        )

    async def bulk_1000(self, i: int, task: int) -> object:
        return await pipeline_executions.copy_pipeline_executions(
            self.db, records=self.inputs.bulk_records
        )

    async def nested(self, i: int, task: int) -> object:
        return await pipelines.get_pipeline_with_steps(self.db, id=self.inputs.pipeline(i))

    async def claim(self, i: int, task: int) -> object:
        async with self.db.transaction() as tx:
            locked = await pipeline_executions.lock_pipelines_with_queued_executions(tx, limit=1)
            if not locked:
                return []
            return await pipeline_executions.claim_pipeline_executions(
                tx, pipeline_ids=[row.id for row in locked], worker_id=worker_id(task), limit=1
            )

    async def transaction(self, i: int, task: int) -> object:
        pipeline_id = self.inputs.pipeline(i)
        async with self.db.transaction() as tx:
            await pipelines.lock_pipeline(tx, id=pipeline_id)
            await pipelines.set_pipeline_paused(tx, id=pipeline_id, is_paused=False)
            return await audit_log.create_audit_entry(
                tx,
                actor_user_id=None,
                actor="bench",
                action="update",
                entity_type="pipeline",
                entity_id=str(pipeline_id),
                before=None,
                after={"is_paused": False},
            )

    async def permissions(self, i: int, task: int) -> object:
        return await users.list_user_permissions(self.db, user_id=self.inputs.user(i))

    async def acquire(self, i: int, task: int) -> object:
        # The checkout every statement pays (private: there is no public acquire to time).
        fast = self.db._fast
        holder = fast.take() or await fast.take_waiting(None)
        fast.give(holder, holder._con)
        return None

    async def close(self) -> None:
        await self.db.close()


def _pipeline(r: Any) -> Pipeline:
    return Pipeline(r[0], r[1], r[2], _OBJECT.decode(r[3]), *tuple(r)[4:])


def _execution(r: Any) -> PipelineExecution:
    return PipelineExecution(
        r[0],
        r[1],
        ExecutionStatus(r[2]),
        r[3],
        TriggerKind(r[4]),
        r[5],
        r[6],
        r[7],
        r[8],
        r[9],
        r[10],
        r[11],
        r[12],
        r[13],
        r[14],
        _OBJECT.decode(r[15]),
        r[16],
    )


class Asyncpg(Implementation):
    """Hand-written asyncpg: the same SQL and Structs on a pool, a default pool or held connections.

    ``held`` gives each concurrent task a connection of its own and never checks out: the
    ceiling of what any pool can reach.
    """

    def __init__(
        self,
        inputs: Inputs,
        name: str,
        pool: asyncpg.Pool | None,
        held: Sequence[asyncpg.Connection] = (),
    ) -> None:
        super().__init__(inputs)
        self.name = name
        self.pool = pool
        self.held = held

    def _on(self, task: int) -> Any:
        return self.held[task] if self.held else self.pool

    async def get(self, i: int, task: int) -> object:
        r = await self._on(task).fetchrow(pipelines.GET_PIPELINE, self.inputs.pipeline(i))
        return None if r is None else _pipeline(r)

    async def list_page(self, i: int, task: int) -> object:
        rows = await self._on(task).fetch(
            pipeline_executions.LIST_PIPELINE_EXECUTIONS, self.inputs.pipeline(i), None, None, 50
        )
        return [_execution(r) for r in rows]

    async def create(self, i: int, task: int) -> object:
        values = [
            msgspec.json.encode(v).decode() if k == "environment_variables" else v
            for k, v in NEW_PIPELINE.items()
        ]
        r = await self._on(task).fetchrow(pipelines.CREATE_PIPELINE, new_pipeline_name(), *values)
        return _pipeline(r)

    async def bulk_1000(self, i: int, task: int) -> object:
        return await self._on(task).copy_records_to_table(
            "pipeline_executions", records=self.inputs.bulk_rows, columns=BULK_COLUMNS
        )

    async def nested(self, i: int, task: int) -> object:
        r = await self._on(task).fetchrow(
            pipelines.GET_PIPELINE_WITH_STEPS, self.inputs.pipeline(i)
        )
        return None if r is None else (_pipeline(tuple(r)[:13]), _STEPS.decode(r[13]))

    async def _claim(self, con: Any, task: int) -> object:
        async with con.transaction():
            locked = await con.fetch(pipeline_executions.LOCK_PIPELINES_WITH_QUEUED_EXECUTIONS, 1)
            if not locked:
                return []
            rows = await con.fetch(
                pipeline_executions.CLAIM_PIPELINE_EXECUTIONS,
                [r[0] for r in locked],
                1,
                worker_id(task),
            )
            return [_execution(r) for r in rows]

    async def claim(self, i: int, task: int) -> object:
        if self.held:
            return await self._claim(self.held[task], task)
        assert self.pool is not None
        async with self.pool.acquire() as con:
            return await self._claim(con, task)

    async def _transaction(self, con: Any, i: int) -> object:
        pipeline_id = self.inputs.pipeline(i)
        async with con.transaction():
            await con.fetchrow(pipelines.LOCK_PIPELINE, pipeline_id)
            await con.fetchrow(pipelines.SET_PIPELINE_PAUSED, False, pipeline_id)
            r = await con.fetchrow(
                audit_log.CREATE_AUDIT_ENTRY,
                None,
                "bench",
                "update",
                "pipeline",
                str(pipeline_id),
                None,
                '{"is_paused": false}',
            )
            assert r is not None
            return AuditLog(r[0], r[1], r[2], r[3], r[4], r[5], None, _OBJECT.decode(r[7]), r[8])

    async def transaction(self, i: int, task: int) -> object:
        if self.held:
            return await self._transaction(self.held[task], i)
        assert self.pool is not None
        async with self.pool.acquire() as con:
            return await self._transaction(con, i)

    async def permissions(self, i: int, task: int) -> object:
        rows = await self._on(task).fetch(users.LIST_USER_PERMISSIONS, self.inputs.user(i))
        return [ListUserPermissionsRow(*r) for r in rows]

    async def acquire(self, i: int, task: int) -> object:
        if self.pool is None:
            return None  # a held connection is never checked out
        con = await self.pool.acquire()
        await self.pool.release(con)
        return None

    async def close(self) -> None:
        for con in self.held:
            await con.close()
        if self.pool is not None:
            await self.pool.close()


def _psycopg_sql(sql: str) -> str:
    """asyncpg's $n placeholders as psycopg's named %(pn)s."""
    return re.sub(r"\$(\d+)", r"%(p\1)s", sql)


def _params(*values: object) -> dict[str, object]:
    return {f"p{n}": value for n, value in enumerate(values, start=1)}


_PG_GET: Final = _psycopg_sql(pipelines.GET_PIPELINE)
_PG_LIST: Final = _psycopg_sql(pipeline_executions.LIST_PIPELINE_EXECUTIONS)
_PG_CREATE: Final = _psycopg_sql(pipelines.CREATE_PIPELINE)
_PG_NESTED: Final = _psycopg_sql(pipelines.GET_PIPELINE_WITH_STEPS)
_PG_LOCK_QUEUED: Final = _psycopg_sql(pipeline_executions.LOCK_PIPELINES_WITH_QUEUED_EXECUTIONS)
_PG_CLAIM: Final = _psycopg_sql(pipeline_executions.CLAIM_PIPELINE_EXECUTIONS)
_PG_LOCK: Final = _psycopg_sql(pipelines.LOCK_PIPELINE)
_PG_PAUSE: Final = _psycopg_sql(pipelines.SET_PIPELINE_PAUSED)
_PG_AUDIT: Final = _psycopg_sql(audit_log.CREATE_AUDIT_ENTRY)
_PG_PERMISSIONS: Final = _psycopg_sql(users.LIST_USER_PERMISSIONS)
_PG_COPY: Final = f"COPY pipeline_executions ({', '.join(BULK_COLUMNS)}) FROM STDIN"


class Psycopg(Implementation):
    """psycopg 3 async with psycopg_pool, used as its docs show: ``async with pool.connection()``.

    Each block is a transaction (psycopg's default): BEGIN on the first statement, COMMIT at the
    end. Rows are tuples, json decoded by psycopg.
    """

    name = "psycopg_pool"

    def __init__(
        self, inputs: Inputs, pool: AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]]
    ):
        super().__init__(inputs)
        self.pool = pool

    async def _one(self, sql: str, params: dict[str, object]) -> object:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchone()

    async def _all(self, sql: str, params: dict[str, object]) -> object:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def get(self, i: int, task: int) -> object:
        return await self._one(_PG_GET, _params(self.inputs.pipeline(i)))

    async def list_page(self, i: int, task: int) -> object:
        return await self._all(_PG_LIST, _params(self.inputs.pipeline(i), None, None, 50))

    async def create(self, i: int, task: int) -> object:
        values = [Jsonb(v) if k == "environment_variables" else v for k, v in NEW_PIPELINE.items()]
        return await self._one(_PG_CREATE, _params(new_pipeline_name(), *values))

    async def bulk_1000(self, i: int, task: int) -> object:
        async with self.pool.connection() as conn:
            cur = conn.cursor()
            async with cur.copy(_PG_COPY) as copy:
                for row in self.inputs.bulk_rows:
                    await copy.write_row(row)
            return cur.rowcount

    async def nested(self, i: int, task: int) -> object:
        return await self._one(_PG_NESTED, _params(self.inputs.pipeline(i)))

    async def claim(self, i: int, task: int) -> object:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_PG_LOCK_QUEUED, _params(1))
            locked = await cur.fetchall()
            if not locked:
                return []
            ids = [r[0] for r in locked]
            cur = await conn.execute(_PG_CLAIM, _params(ids, 1, worker_id(task)))
            return await cur.fetchall()

    async def transaction(self, i: int, task: int) -> object:
        pipeline_id = self.inputs.pipeline(i)
        after = Jsonb({"is_paused": False})
        async with self.pool.connection() as conn:
            await conn.execute(_PG_LOCK, _params(pipeline_id))
            await conn.execute(_PG_PAUSE, _params(False, pipeline_id))
            values = _params(None, "bench", "update", "pipeline", str(pipeline_id), None, after)
            cur = await conn.execute(_PG_AUDIT, values)
            return await cur.fetchone()

    async def permissions(self, i: int, task: int) -> object:
        return await self._all(_PG_PERMISSIONS, _params(self.inputs.user(i)))

    async def acquire(self, i: int, task: int) -> object:
        async with self.pool.connection():
            return None

    async def close(self) -> None:
        await self.pool.close()


async def _no_reset(con: asyncpg.Connection) -> None:
    pass


async def open_etlstore(dsn: str, inputs: Inputs) -> Etlstore:
    db = await etlstore.connect(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE, slow_query_s=None)
    return Etlstore(inputs, db)


async def open_asyncpg(dsn: str, inputs: Inputs) -> list[Asyncpg]:
    """Hand-written asyncpg three ways: etlstore's pool settings, held connections, defaults."""
    same = await asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE, reset=_no_reset)
    held = [await asyncpg.connect(dsn) for _ in range(POOL_SIZE)]
    default = await asyncpg.create_pool(dsn)
    return [
        Asyncpg(inputs, "asyncpg_pool", same),
        Asyncpg(inputs, "asyncpg_held", None, held),
        Asyncpg(inputs, "asyncpg_default_pool", default),
    ]


async def open_psycopg(dsn: str, inputs: Inputs) -> Psycopg:
    pool: AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]] = AsyncConnectionPool(
        dsn, min_size=POOL_SIZE, max_size=POOL_SIZE, open=False
    )
    await pool.open(wait=True)
    return Psycopg(inputs, pool)
