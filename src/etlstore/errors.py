"""The errors etlstore raises: one class per decision a caller makes, keyed by SQLSTATE.

Each class lists the asyncpg SQLSTATE classes it stands for; the asyncpg error stays available
as ``__cause__``. Messages name the query, constraint, table and columns; they never contain
parameter values (asyncpg's ``detail`` does, so it is never copied) or connection passwords.
Errors outside this map (syntax errors, undefined tables: programming errors) pass through as
the asyncpg exception itself.
"""

from __future__ import annotations

__all__ = [
    "CheckViolation",
    "Conflict",
    "EtlstoreError",
    "InvalidReference",
    "InvalidValue",
    "NotFound",
    "NotNullViolation",
    "OutcomeUnknown",
    "QueryTimeout",
    "ReadOnly",
    "SerializationConflict",
    "Unavailable",
]


class EtlstoreError(Exception):
    """Base of etlstore's errors; ``sqlstate`` is the server's code when there was one."""

    #: Whether running the whole transaction again may succeed (only SerializationConflict).
    retryable: bool = False

    def __init__(self, message: str, *, query: str = "", sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.query = query
        self.sqlstate = sqlstate


class NotFound(EtlstoreError):
    """A row the caller required does not exist (also PL/pgSQL ``no_data_found``, P0002)."""


class _ConstraintError(EtlstoreError):
    """A write violated a constraint of ``schema.table``."""

    def __init__(
        self,
        message: str,
        *,
        query: str = "",
        sqlstate: str | None = None,
        schema: str | None = None,
        table: str | None = None,
        constraint: str | None = None,
        columns: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, query=query, sqlstate=sqlstate)
        self.schema = schema
        self.table = table
        self.constraint = constraint
        self.columns = columns


class Conflict(_ConstraintError):
    """A unique or exclusion constraint was violated (23505, 23P01).

    ``columns`` come from the catalog by constraint name (the server's detail holds values).
    """


class InvalidReference(_ConstraintError):
    """A foreign key was violated (23503, or 23001 for ON DELETE/UPDATE RESTRICT).

    The row refers to a missing row, or a row still referred to was deleted or its key changed.
    """


class CheckViolation(_ConstraintError):
    """A check constraint was violated (23514)."""


class NotNullViolation(_ConstraintError):
    """NULL was written to a NOT NULL column (23502); ``column`` names it."""

    @property
    def column(self) -> str | None:
        """The NOT NULL column."""
        return self.columns[0] if self.columns else None


class InvalidValue(EtlstoreError):
    """Invalid data (SQLSTATE class 22: a bad enum label, a number out of range, division by zero).

    ``condition`` names the server's condition, e.g. ``invalid_text_representation``; the server's
    own message quotes the value, so it is not copied.
    """

    def __init__(
        self,
        message: str,
        *,
        query: str = "",
        sqlstate: str | None = None,
        condition: str = "",
        column: str | None = None,
    ) -> None:
        super().__init__(message, query=query, sqlstate=sqlstate)
        self.condition = condition
        self.column = column


class ReadOnly(EtlstoreError):
    """A write was sent through ``db.replica`` (25006 read_only_sql_transaction): use ``db``."""


class SerializationConflict(EtlstoreError):
    """The transaction lost a serialization race or a deadlock (40001, 40P01): run it again."""

    retryable = True


class QueryTimeout(EtlstoreError):
    """A statement or lock timeout (57014, 55P03, 25P03, 25P04) or the client's own timeout."""


class Unavailable(EtlstoreError):
    """The database cannot be reached, or the connection was lost before anything committed."""


class OutcomeUnknown(EtlstoreError):
    """The connection was lost while a write may have committed (during COMMIT or autocommit).

    Deliberately not an Unavailable: retrying blindly may apply the write twice. Make the write
    idempotent (an idempotency key with ``ON CONFLICT DO NOTHING``) before retrying it.
    """
