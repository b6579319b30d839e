"""Per-query counters, the slow-query log, DEBUG logging and the metrics hook.

Queries are named by the comment line that generated SQL starts with (contracts.md):
``-- <query_name> (sql/<stem>.sql:<line>)``. The name is parsed once per SQL string and the
string is mapped straight to its counters, so the hot path costs one dict lookup, a few float
operations and one ``isEnabledFor`` check. Parameters are never logged or passed to hooks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["UNNAMED", "QueryHook", "QueryObserver", "QueryStats", "query_name"]

_log = logging.getLogger("etlstore.queries")
_DEBUG = logging.DEBUG

UNNAMED = "(unnamed)"
# SQL built at run time (not ours: users may pass any string) must not grow the cache forever.
_MAX_CACHED_SQL = 10_000

#: Called after every statement with the query name, its duration in seconds and the error
#: (None on success). Runs on the event loop: keep it cheap and never block.
QueryHook = Callable[[str, float, BaseException | None], None]


def query_name(sql: str) -> str:
    """The name in the ``-- <name> (<source>)`` first line of ``sql``, or ``(unnamed)``."""
    if not sql.startswith("-- "):
        return UNNAMED
    end = sql.find("\n")
    first_line = sql[3:] if end < 0 else sql[3:end]
    name = first_line.split(" (", 1)[0].strip()
    if not name or any(ch.isspace() for ch in name):
        return UNNAMED
    return name


@dataclass(frozen=True, slots=True)
class QueryStats:
    """Counters of one query name since the database was opened; times in seconds."""

    calls: int
    errors: int
    total_s: float
    max_s: float


class _Counters:
    __slots__ = ("calls", "errors", "max_s", "name", "total_s")

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0
        self.errors = 0
        self.total_s = 0.0
        self.max_s = 0.0


class QueryObserver:
    """Counts, logs and reports every statement an executor runs."""

    def __init__(self, *, slow_query_s: float | None, hooks: Iterable[QueryHook] = ()) -> None:
        self._slow_query_s = float("inf") if slow_query_s is None else slow_query_s
        self._hooks = tuple(hooks)
        self._by_sql: dict[str, _Counters] = {}
        self._by_name: dict[str, _Counters] = {}

    def _counters(self, sql: str) -> _Counters:
        name = query_name(sql)
        counters = self._by_name.get(name)
        if counters is None:
            counters = self._by_name[name] = _Counters(name)
        if len(self._by_sql) < _MAX_CACHED_SQL:
            self._by_sql[sql] = counters
        return counters

    def record(self, sql: str, duration_s: float, error: BaseException | None) -> None:
        """Account one statement; ``error`` is what the caller will see, None on success."""
        counters = self._by_sql.get(sql) or self._counters(sql)
        counters.calls += 1
        counters.total_s += duration_s
        if duration_s > counters.max_s:
            counters.max_s = duration_s
        if error is not None:
            counters.errors += 1
        if duration_s >= self._slow_query_s:
            _log.warning("slow query %s took %.3f s", counters.name, duration_s)
        if _log.isEnabledFor(_DEBUG):
            _log.debug(
                "query %s took %.6f s%s",
                counters.name,
                duration_s,
                "" if error is None else f" and failed with {type(error).__name__}",
            )
        for hook in self._hooks:
            try:
                hook(counters.name, duration_s, error)
            except Exception:
                # A broken exporter must not fail the query it observes.
                _log.exception("on_query hook %r failed", hook)

    def snapshot(self) -> dict[str, QueryStats]:
        """The counters per query name, copied."""
        return {
            name: QueryStats(c.calls, c.errors, c.total_s, c.max_s)
            for name, c in sorted(self._by_name.items())
        }
