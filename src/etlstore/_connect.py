"""``etlstore.connect()``: connections set up once, when opened, at no per-read cost.

Server settings travel in the startup packet (asyncpg's ``server_settings``: no extra round
trip) and the json/jsonb codecs are registered locally (built-in types need no introspection).

``pgbouncer=True``: the DSN is a PgBouncer in transaction pooling mode, where consecutive
transactions of one client connection may run on different server connections. Only the startup
parameters PgBouncer re-applies on every server connection it lends (``application_name``,
``TimeZone``) are sent; session settings it cannot carry (the timeouts, ``jit``,
``default_transaction_read_only``) are not, and asking for a timeout is an error rather than a
silent no-op. asyncpg's statement cache is off unless asked for (PgBouncer >= 1.21 with
``max_prepared_statements`` can keep it): a named prepared statement lives on one server
connection only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator, Iterable
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import msgspec

from etlstore._config import resolve_dsn
from etlstore._database import Database
from etlstore._executor import Connection
from etlstore._observability import QueryHook, QueryObserver
from etlstore._replicas import Router
from etlstore._translate import cannot_connect

__all__ = ["connect"]


# contracts.md: JSON crosses the executor as text. Generated code passes str (left untouched
# here) and decodes results itself with a typed msgspec Decoder, so results are returned as the
# undecoded JSON text; other parameter values are encoded here with msgspec. The codecs use the
# binary wire format so that binary COPY (copy_records_to_table) works with json/jsonb columns.
_JSONB_VERSION = b"\x01"
#: asyncpg's own default: prepared statements kept per connection.
_ASYNCPG_STATEMENT_CACHE_SIZE = 100


def _json_bytes(value: object) -> bytes:
    if type(value) is str:
        return value.encode()
    return msgspec.json.encode(value)


def _encode_jsonb(value: object) -> bytes:
    return _JSONB_VERSION + _json_bytes(value)


def _decode_json(data: bytes) -> str:
    return data.decode()


def _decode_jsonb(data: bytes) -> str:
    return data[1:].decode()  # after the format version byte, which is 1


async def _init_connection(con: Connection) -> None:
    # Builtin types in pg_catalog: asyncpg resolves them locally, no introspection round trip.
    await con.set_type_codec(
        "json", schema="pg_catalog", encoder=_json_bytes, decoder=_decode_json, format="binary"
    )
    await con.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_encode_jsonb, decoder=_decode_jsonb, format="binary"
    )


def _ms(seconds: float | None) -> str | None:
    return None if seconds is None else str(round(seconds * 1000))


def _server_settings(
    dsn: str,
    *,
    application_name: str,
    statement_timeout: float | None,
    lock_timeout: float | None,
    idle_in_transaction_session_timeout: float | None,
    pgbouncer: bool,
) -> dict[str, str]:
    # PgBouncer tracks TimeZone and application_name per client and sets them on each server
    # connection it lends; any other startup parameter it refuses or, if told to ignore it, drops.
    settings = {"TimeZone": "UTC"} if pgbouncer else {"TimeZone": "UTC", "jit": "off"}
    # asyncpg lets these settings override the DSN's; a name given in the DSN wins here.
    if "application_name" not in parse_qs(urlsplit(dsn).query):
        settings["application_name"] = application_name
    timeouts = {
        "statement_timeout": _ms(statement_timeout),
        "lock_timeout": _ms(lock_timeout),
        "idle_in_transaction_session_timeout": _ms(idle_in_transaction_session_timeout),
    }
    settings.update({name: value for name, value in timeouts.items() if value is not None})
    return settings


def _check_pgbouncer_timeouts(timeouts: dict[str, float | None]) -> None:
    """Refuse server-side timeouts in PgBouncer mode: they would silently not apply."""
    given = [name for name, value in timeouts.items() if value is not None]
    if given:
        raise ValueError(
            f"{', '.join(given)} cannot be sent through PgBouncer in transaction pooling "
            "(a session setting does not follow the client to the next server connection): "
            "set it on the role instead (ALTER ROLE <user> SET statement_timeout = '5s'), "
            "or use command_timeout"
        )


def _statement_cache_size(statement_cache_size: int | None, *, pgbouncer: bool) -> int:
    if statement_cache_size is not None:
        return statement_cache_size
    return 0 if pgbouncer else _ASYNCPG_STATEMENT_CACHE_SIZE


def _describe(dsn: str) -> str:
    """host:port/database of a DSN, for reprs: never the user's password."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return f"{host}{parts.path}"


async def _open(
    dsn: str | None,
    *,
    min_size: int,
    max_size: int,
    command_timeout: float | None,
    statement_timeout: float | None,
    lock_timeout: float | None,
    idle_in_transaction_session_timeout: float | None,
    application_name: str,
    connect_timeout: float,
    acquire_timeout: float | None,
    max_queries: int,
    max_inactive_connection_lifetime: float,
    slow_query_s: float | None,
    on_query: Iterable[QueryHook],
    replicas: tuple[str, ...],
    max_replica_lag_s: float,
    replica_probe_interval_s: float,
    pgbouncer: bool,
    statement_cache_size: int | None,
) -> Database:
    if dsn is None:
        # Sync, and may start the embedded server: not on the event loop.
        dsn = await asyncio.to_thread(resolve_dsn)
    observer = QueryObserver(slow_query_s=slow_query_s, hooks=on_query)
    cache_size = _statement_cache_size(statement_cache_size, pgbouncer=pgbouncer)

    async def database(url: str, *, min_size: int, read_only: bool = False) -> Database:
        settings = _server_settings(
            url,
            application_name=application_name,
            statement_timeout=statement_timeout,
            lock_timeout=lock_timeout,
            idle_in_transaction_session_timeout=idle_in_transaction_session_timeout,
            pgbouncer=pgbouncer,
        )
        if read_only and not pgbouncer:  # docs/runtime.md, PgBouncer: not read-only there
            settings["default_transaction_read_only"] = "on"
        pool = asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            max_queries=max_queries,
            # Enforced by FastPool's sweep, not by a timer per checkout.
            max_inactive_connection_lifetime=0,
            init=_init_connection,
            reset=_no_reset,
            command_timeout=command_timeout,
            timeout=connect_timeout,
            server_settings=settings,
            statement_cache_size=cache_size,
        )
        try:
            await pool
        except BaseException as exc:
            error = cannot_connect(exc)
            if error is None:
                raise
            raise error from exc
        return Database(
            pool,
            where=_describe(url),
            observer=observer,
            acquire_timeout=acquire_timeout,
            max_inactive_connection_lifetime=max_inactive_connection_lifetime,
        )

    primary = await database(dsn, min_size=min_size)
    # Replica pools and the primary's read-only pool open connections only when used: a replica
    # that is down when the application starts is skipped, not an error.
    opened = [primary]
    try:
        opened.append(await database(dsn, min_size=0, read_only=True))
        for url in replicas:
            opened.append(await database(url, min_size=0))
    except BaseException:
        for db in opened:
            await db.close()
        raise
    router = Router(
        primary,
        opened[1],
        opened[2:],
        max_lag_s=max_replica_lag_s,
        probe_interval_s=replica_probe_interval_s,
    )
    primary._router = router
    if replicas:
        try:
            await router.probe()  # routing is current from the first read on
        except BaseException:
            await primary.close()
            raise
        router.start()
    return primary


async def _no_reset(con: Connection) -> None:
    """Pool(reset=...): nothing to send; the layer leaves no session state behind.

    asyncpg still rolls back an open transaction before calling this (``Connection._reset``)
    for connections checked out through ``db.pool`` directly.
    """


class _Connecting:
    """What ``connect()`` returns: awaitable (a Database) and an async context manager."""

    __slots__ = ("_db", "_opening")

    def __init__(self, opening: Callable[[], Awaitable[Database]]) -> None:
        self._opening = opening
        self._db: Database | None = None

    def __await__(self) -> Generator[Any, None, Database]:
        return self._opening().__await__()

    async def __aenter__(self) -> Database:
        self._db = await self._opening()
        return self._db

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._db is not None:
            await self._db.close()


def connect(
    dsn: str | None = None,
    *,
    min_size: int = 1,
    max_size: int = 10,
    command_timeout: float | None = None,
    statement_timeout: float | None = None,
    lock_timeout: float | None = None,
    idle_in_transaction_session_timeout: float | None = None,
    application_name: str = "etlstore",
    connect_timeout: float = 10.0,
    acquire_timeout: float | None = None,
    max_queries: int = 50_000,
    max_inactive_connection_lifetime: float = 300.0,
    slow_query_s: float | None = 0.5,
    on_query: Iterable[QueryHook] = (),
    replicas: Iterable[str] = (),
    max_replica_lag_s: float = 5.0,
    replica_probe_interval_s: float = 1.0,
    pgbouncer: bool = False,
    statement_cache_size: int | None = None,
) -> _Connecting:
    """Open a Database: ``db = await connect(...)`` or ``async with connect(...) as db:``.

    ``dsn``: a libpq URL (``postgresql://user:pw@host:port/db?sslmode=verify-full&sslrootcert=
    ca.pem``, TLS options as libpq/asyncpg read them); None means ``DATABASE_URL`` or the
    working copy's embedded server. Timeouts are in seconds: ``command_timeout`` is enforced by
    the client, the other three are server settings sent at connect time. ``slow_query_s``:
    statements at least this slow are logged at WARNING (None: never). ``on_query``: callables
    ``(name, duration_s, error)`` run after every statement, e.g. to export metrics.
    ``replicas``: DSNs of streaming replicas for ``db.replica`` reads, skipped while down or
    lagging more than ``max_replica_lag_s`` (probed every ``replica_probe_interval_s``).
    ``pgbouncer``: the DSN is a PgBouncer in transaction pooling mode (see docs/runtime.md);
    the timeouts then cannot be given here. ``statement_cache_size``: asyncpg's prepared
    statements per connection; None means 100, or 0 with ``pgbouncer`` (set it above 0 only for
    PgBouncer >= 1.21 with ``max_prepared_statements`` above 0).
    """
    if pgbouncer:
        _check_pgbouncer_timeouts(
            {
                "statement_timeout": statement_timeout,
                "lock_timeout": lock_timeout,
                "idle_in_transaction_session_timeout": idle_in_transaction_session_timeout,
            }
        )
    hooks = tuple(on_query)
    replica_dsns = tuple(replicas)

    def opening() -> Awaitable[Database]:
        return _open(
            dsn,
            min_size=min_size,
            max_size=max_size,
            command_timeout=command_timeout,
            statement_timeout=statement_timeout,
            lock_timeout=lock_timeout,
            idle_in_transaction_session_timeout=idle_in_transaction_session_timeout,
            application_name=application_name,
            connect_timeout=connect_timeout,
            acquire_timeout=acquire_timeout,
            max_queries=max_queries,
            max_inactive_connection_lifetime=max_inactive_connection_lifetime,
            slow_query_s=slow_query_s,
            on_query=hooks,
            replicas=replica_dsns,
            max_replica_lag_s=max_replica_lag_s,
            replica_probe_interval_s=replica_probe_interval_s,
            pgbouncer=pgbouncer,
            statement_cache_size=statement_cache_size,
        )

    return _Connecting(opening)
