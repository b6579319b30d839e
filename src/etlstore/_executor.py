"""The executor surface shared by ``Database`` and ``Transaction`` (asyncpg's signatures)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

__all__ = ["ExecutorMethods"]

_T = TypeVar("_T")
if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]
else:  # the stubs make it generic, the runtime class is not
    Connection = asyncpg.Connection


class ExecutorMethods(ABC):
    """fetch, fetchrow, fetchval, execute, executemany, copy_records_to_table over ``_run``."""

    __slots__ = ()

    @abstractmethod
    async def _run(self, sql: str, call: Callable[[Connection], Awaitable[_T]]) -> _T:
        """Run ``call`` on a connection, timing it and translating its errors."""

    async def fetch(
        self,
        query: str,
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> list[asyncpg.Record]:
        """All rows of ``query``."""
        return await self._run(query, lambda con: con.fetch(query, *args, timeout=timeout))

    async def fetchrow(
        self,
        query: str,
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> asyncpg.Record | None:
        """The first row of ``query``, None when there is none."""
        return await self._run(query, lambda con: con.fetchrow(query, *args, timeout=timeout))

    async def fetchval(
        self,
        query: str,
        *args: Any,
        column: int = 0,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Any:
        """One value of the first row of ``query``, None when there is no row."""
        return await self._run(
            query, lambda con: con.fetchval(query, *args, column=column, timeout=timeout)
        )

    async def execute(
        self,
        query: str,
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> str:
        """Run ``query``; returns the status tag, e.g. ``UPDATE 3``."""
        return await self._run(query, lambda con: con.execute(query, *args, timeout=timeout))

    async def executemany(
        self,
        command: str,
        args: Iterable[Sequence[Any]],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None:
        """Run ``command`` once per argument tuple, pipelined (atomic since asyncpg 0.30)."""
        await self._run(command, lambda con: con.executemany(command, args, timeout=timeout))

    async def copy_records_to_table(
        self,
        table_name: str,
        *,
        records: Iterable[Sequence[Any]],
        columns: Sequence[str] | None = None,
        schema_name: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> str:
        """Binary COPY of ``records`` into the table; returns the status tag, e.g. ``COPY 10``."""
        # Counted under a name of its own: there is no SQL text to take a name from.
        name = f"-- copy_records_to_table:{table_name}\n"
        return await self._run(
            name,
            lambda con: con.copy_records_to_table(
                table_name,
                records=records,
                columns=columns,
                schema_name=schema_name,
                timeout=timeout,
            ),
        )
