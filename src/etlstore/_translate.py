"""From asyncpg's exceptions to etlstore's errors, without copying values into messages.

Only the server's structured fields are used (SQLSTATE, schema, table, column, constraint names)
and, for a few SQLSTATEs whose primary message is fixed text, that message. ``detail`` (which
holds the offending row's values) is never read.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Final

import asyncpg
from asyncpg import exceptions as pg

from etlstore import errors
from etlstore._observability import query_name

__all__ = [
    "CONSTRAINT_COLUMNS_SQL",
    "ConstraintLookup",
    "cannot_connect",
    "is_out_of_step",
    "translate",
]

#: (schema, table, constraint) -> (table, constraint, columns) as declared, None when unknown.
#: An error raised in a partition names the partition and its copy of the constraint
#: (``pipeline_executions_p20261101``, ``pipeline_executions_pipeline_id_fkey1``); the lookup
#: answers with the partitioned table and the constraint as the schema declares them.
ConstraintLookup = Callable[[str, str, str], Awaitable[tuple[str, str, tuple[str, ...]] | None]]

# Unique indexes that back no constraint (CREATE UNIQUE INDEX) raise 23505 with the index name.
CONSTRAINT_COLUMNS_SQL: Final = """-- etlstore_constraint_columns (etlstore runtime)
WITH RECURSIVE chain AS (
    (SELECT c.oid, c.conparentid, c.conrelid, c.conkey, c.conname, 0 AS depth
       FROM pg_constraint c
       JOIN pg_namespace n ON n.oid = c.connamespace
       JOIN pg_class t ON t.oid = c.conrelid
      WHERE n.nspname = $1 AND c.conname = $3
      ORDER BY t.relname = $2 DESC
      LIMIT 1)
    UNION ALL
    SELECT p.oid, p.conparentid, p.conrelid, p.conkey, p.conname, chain.depth + 1
      FROM pg_constraint p JOIN chain ON p.oid = chain.conparentid
),
con AS (SELECT conrelid, conkey, conname FROM chain ORDER BY depth DESC LIMIT 1),
tbl AS (
    SELECT coalesce(pg_partition_root(t.oid), t.oid) AS oid
      FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
     WHERE n.nspname = $1 AND t.relname = $2
)
SELECT coalesce((SELECT r.relname::text FROM pg_class r WHERE r.oid = (SELECT oid FROM tbl)), $2),
       coalesce((SELECT conname::text FROM con), $3),
       coalesce(
           (SELECT array_agg(a.attname::text ORDER BY k.ord)
              FROM con CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum),
           (SELECT array_agg(a.attname::text ORDER BY k.ord)
              FROM pg_index i
              JOIN pg_class ic ON ic.oid = i.indexrelid
              JOIN pg_namespace n ON n.oid = ic.relnamespace
              CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE n.nspname = $1 AND ic.relname = $3 AND k.ord <= i.indnkeyatts),
           '{}'::text[])"""

# Losing the connection tells nothing about a statement already sent: it may have committed.
_CONNECTION_LOST: Final = (
    pg.ConnectionDoesNotExistError,
    pg.ConnectionFailureError,
    pg.AdminShutdownError,
    pg.CrashShutdownError,
    ConnectionError,
    OSError,
)
_CONSTRAINTS: Final = (
    pg.UniqueViolationError,
    pg.ExclusionViolationError,
    pg.ForeignKeyViolationError,
    pg.RestrictViolationError,
    pg.CheckViolationError,
    pg.NotNullViolationError,
)
_TIMEOUTS: Final = (
    pg.QueryCanceledError,
    pg.LockNotAvailableError,
    pg.IdleInTransactionSessionTimeoutError,
    pg.TransactionTimeoutError,
    asyncio.TimeoutError,
)


def _relation(schema: str | None, table: str | None) -> str:
    if table is None:
        return "an unknown table"
    return table if schema is None else f"{schema}.{table}"


def _columns_text(columns: tuple[str, ...]) -> str:
    return f" (columns: {', '.join(columns)})" if columns else ""


def _server_message(exc: pg.PostgresError) -> str:
    # The primary message only: str(exc) appends DETAIL, which holds values.
    return str(exc.args[0]) if exc.args else type(exc).__name__


async def _constraint_error(
    exc: pg.IntegrityConstraintViolationError, name: str, lookup: ConstraintLookup
) -> errors.EtlstoreError:
    schema = exc.schema_name
    table = exc.table_name
    constraint = exc.constraint_name
    columns: tuple[str, ...] = ()
    if schema is not None and table is not None:
        found = await lookup(schema, table, constraint or "")
        if found is not None:
            table, declared, columns = found
            constraint = declared if constraint is not None else None
    where = _relation(schema, table)
    if isinstance(exc, pg.NotNullViolationError):
        column = exc.column_name
        return errors.NotNullViolation(
            f"query {name}: NULL in NOT NULL column {column} of {where}",
            query=name,
            sqlstate=exc.sqlstate,
            schema=schema,
            table=table,
            constraint=constraint,
            columns=(column,) if column else (),
        )
    cls: type[errors.Conflict | errors.InvalidReference | errors.CheckViolation]
    if isinstance(exc, pg.UniqueViolationError):
        cls, what = errors.Conflict, "duplicate key violates unique constraint"
    elif isinstance(exc, pg.ExclusionViolationError):
        cls, what = errors.Conflict, "conflicting key violates exclusion constraint"
    elif isinstance(exc, (pg.ForeignKeyViolationError, pg.RestrictViolationError)):
        # 23001: ON DELETE/UPDATE RESTRICT, the row is still referred to.
        cls, what = errors.InvalidReference, "foreign key constraint violated:"
    else:
        cls, what = errors.CheckViolation, "row violates check constraint"
    return cls(
        f"query {name}: {what} {constraint} on {where}{_columns_text(columns)}",
        query=name,
        sqlstate=exc.sqlstate,
        schema=schema,
        table=table,
        constraint=constraint,
        columns=columns,
    )


def _invalid_value(
    exc: pg.DataError | pg.ProgramLimitExceededError, name: str
) -> errors.InvalidValue:
    # InvalidTextRepresentationError -> invalid_text_representation, the condition's name.
    condition = re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__.removesuffix("Error")).lower()
    column = exc.column_name
    where = (
        f" for column {column} of {_relation(exc.schema_name, exc.table_name)}" if column else ""
    )
    return errors.InvalidValue(
        f"query {name}: invalid data{where}: {condition} (SQLSTATE {exc.sqlstate})",
        query=name,
        sqlstate=exc.sqlstate,
        condition=condition,
        column=column,
    )


def _scrub(exc: pg.PostgresError) -> None:
    """Take the values out of the asyncpg error that becomes ``__cause__``.

    A logged traceback prints the cause: its DETAIL holds the failing row ("Failing row contains
    (...)", "Key (email)=(...)"), and a data error's primary message quotes the bad value.
    """
    exc.detail = None
    if isinstance(exc, (pg.DataError, pg.ProgramLimitExceededError)):
        exc.args = (f"{type(exc).__name__}: the server's message quoted the value; withheld",)


async def translate(
    exc: BaseException, sql: str, *, may_have_committed: bool, lookup: ConstraintLookup
) -> BaseException | None:
    """The etlstore error for ``exc`` raised by ``sql``, or None to let ``exc`` through.

    ``may_have_committed``: whether losing the connection now leaves a write's fate unknown
    (an autocommit statement, a COMMIT) rather than certainly rolled back. An asyncpg error that
    is translated loses the values it carried (see ``_scrub``) before it becomes the cause.
    """
    error = await _translate(exc, sql, may_have_committed=may_have_committed, lookup=lookup)
    if error is not None and isinstance(exc, pg.PostgresError):
        _scrub(exc)
    return error


async def _translate(
    exc: BaseException, sql: str, *, may_have_committed: bool, lookup: ConstraintLookup
) -> BaseException | None:
    if isinstance(exc, asyncio.CancelledError) or not isinstance(exc, Exception):
        return None
    name = query_name(sql)
    sqlstate: str | None = getattr(exc, "sqlstate", None)
    if isinstance(exc, _CONSTRAINTS):
        return await _constraint_error(exc, name, lookup)
    if isinstance(exc, (pg.SerializationError, pg.DeadlockDetectedError)):
        return errors.SerializationConflict(
            f"query {name}: {_server_message(exc)} (SQLSTATE {sqlstate}); "
            "run the transaction again",
            query=name,
            sqlstate=sqlstate,
        )
    if isinstance(exc, _TIMEOUTS):
        what = (
            _server_message(exc)
            if isinstance(exc, pg.PostgresError)
            else "the client-side timeout expired"
        )
        return errors.QueryTimeout(f"query {name}: {what}", query=name, sqlstate=sqlstate)
    if isinstance(exc, (pg.DataError, pg.ProgramLimitExceededError)):
        return _invalid_value(exc, name)
    if isinstance(exc, pg.NoDataFoundError):
        return errors.NotFound(f"query {name}: no row found", query=name, sqlstate=sqlstate)
    if isinstance(exc, _CONNECTION_LOST):
        if may_have_committed:
            return errors.OutcomeUnknown(
                f"query {name}: the connection was lost ({type(exc).__name__}) while a write "
                "may have committed; make it idempotent before retrying",
                query=name,
                sqlstate=sqlstate,
            )
        return errors.Unavailable(
            f"query {name}: the connection was lost ({type(exc).__name__}); nothing was committed",
            query=name,
            sqlstate=sqlstate,
        )
    if isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc):
        return errors.Unavailable(
            f"query {name}: the connection was closed before the statement was sent",
            query=name,
        )
    if is_out_of_step(exc):
        return errors.Unavailable(
            f"query {name}: the connection broke before the statement was sent", query=name
        )
    return None


def is_out_of_step(exc: BaseException) -> bool:
    """Whether asyncpg refused to send a statement because the connection already broke.

    A server that terminates a session (shutdown, pg_terminate_backend) sends a FATAL error and
    closes the socket; asyncpg reads the error of an idle connection as a protocol fault and
    notices the close one event-loop iteration later. A statement started in between is refused
    before anything is written ("cannot switch to state ..."): nothing happened on the server.
    """
    return isinstance(exc, asyncpg.InternalClientError) and str(exc).startswith(
        "cannot switch to state"
    )


def cannot_connect(exc: BaseException) -> BaseException | None:
    """The Unavailable for a failed checkout (connect or wait), None for cancellation/misuse."""
    if not isinstance(exc, Exception):
        return None
    if isinstance(exc, asyncpg.InterfaceError) and not isinstance(exc, pg.PostgresError):
        return None  # pool closed or not initialised: a programming error
    sqlstate: str | None = getattr(exc, "sqlstate", None)
    if isinstance(exc, asyncio.TimeoutError):
        reason = "no connection became free or could be opened in time"
    elif isinstance(exc, pg.PostgresError):
        reason = f"{_server_message(exc)} (SQLSTATE {sqlstate})"
    elif isinstance(exc, OSError):
        # OSError texts name the host and port, never credentials.
        reason = str(exc) or type(exc).__name__
    else:
        reason = type(exc).__name__
    return errors.Unavailable(f"cannot connect to the database: {reason}", sqlstate=sqlstate)
