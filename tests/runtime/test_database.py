"""Database: connect, the executor surface, settings sent at connect, health and stats."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import msgspec
import pytest

import etlstore
from etlstore._config import with_database
from etlstore._embedded import EmbeddedPostgres
from etlstore.errors import Unavailable

_CANARY = "canary-9f3e1c7b"


def _with_password(dsn: str, password: str) -> str:
    return dsn.replace("postgresql://postgres@", f"postgresql://postgres:{password}@", 1)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connect_is_awaitable_and_an_async_context_manager(runtime_dsn: str) -> None:
    db = await etlstore.connect(runtime_dsn, min_size=1, max_size=1)
    try:
        assert await db.fetchval("SELECT 41 + 1") == 42
    finally:
        await db.close()
    async with etlstore.connect(runtime_dsn, max_size=1) as db2:
        assert await db2.fetchval("SELECT 1") == 1
    assert db2.pool.is_closing()


async def test_connect_without_dsn_uses_database_url(
    runtime_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "DATABASE_URL", runtime_dsn.replace("postgresql://", "postgresql+psycopg://")
    )
    async with etlstore.connect(max_size=1) as db:
        assert await db.fetchval("SELECT current_database()") == runtime_dsn.rsplit("/", 1)[1]


async def test_settings_are_sent_at_connect(runtime_dsn: str) -> None:
    async with etlstore.connect(
        runtime_dsn,
        max_size=1,
        statement_timeout=2.5,
        lock_timeout=1,
        idle_in_transaction_session_timeout=60,
        application_name="etl-worker",
    ) as db:
        row = await db.fetchrow(
            "SELECT current_setting('TimeZone'), current_setting('jit'),"
            " current_setting('application_name'), current_setting('statement_timeout'),"
            " current_setting('lock_timeout'),"
            " current_setting('idle_in_transaction_session_timeout')"
        )
    assert row is not None
    assert tuple(row) == ("UTC", "off", "etl-worker", "2500ms", "1s", "1min")


async def test_application_name_in_the_dsn_wins(runtime_dsn: str) -> None:
    async with etlstore.connect(runtime_dsn + "?application_name=from-dsn", max_size=1) as db:
        assert await db.fetchval("SELECT current_setting('application_name')") == "from-dsn"


async def test_executor_surface_matches_asyncpg(db: etlstore.Database) -> None:
    await db.execute("CREATE TABLE IF NOT EXISTS surface (id int PRIMARY KEY, name text)")
    await db.execute("TRUNCATE surface")
    await db.executemany("INSERT INTO surface VALUES ($1, $2)", [(1, "a"), (2, "b")])
    status = await db.copy_records_to_table("surface", records=[(3, "c"), (4, "d")])
    assert status == "COPY 2"
    assert await db.execute("UPDATE surface SET name = upper(name) WHERE id < $1", 3) == (
        "UPDATE 2"
    )
    rows = await db.fetch("SELECT id, name FROM surface ORDER BY id")
    assert [tuple(r) for r in rows] == [(1, "A"), (2, "B"), (3, "c"), (4, "d")]
    assert await db.fetchrow("SELECT id FROM surface WHERE id = $1", 99) is None
    assert await db.fetchval("SELECT id, name FROM surface WHERE id = 4", column=1) == "d"


async def test_json_crosses_as_text_and_other_values_are_encoded_with_msgspec(
    db: etlstore.Database,
) -> None:
    text = '{"b": [1, 2], "a": null}'
    assert await db.fetchval("SELECT $1::json", text) == text
    assert await db.fetchval("SELECT $1::jsonb", text) == '{"a": null, "b": [1, 2]}'
    assert msgspec.json.decode(await db.fetchval("SELECT $1::jsonb", {"k": [1, "x"]})) == {
        "k": [1, "x"]
    }


async def test_json_and_jsonb_columns_take_binary_copy(db: etlstore.Database) -> None:
    await db.execute("CREATE TABLE IF NOT EXISTS documents (id int, body jsonb, raw json)")
    await db.execute("TRUNCATE documents")
    records = [(1, '{"a": 1}', '{"b":  2}'), (2, {"c": [3]}, ["d"])]
    assert await db.copy_records_to_table("documents", records=records) == "COPY 2"
    rows = await db.fetch("SELECT body, raw FROM documents ORDER BY id")
    assert [tuple(r) for r in rows] == [('{"a": 1}', '{"b":  2}'), ('{"c": [3]}', '["d"]')]


async def test_health_is_one_round_trip_with_version_latency_and_pool(
    db: etlstore.Database,
) -> None:
    health = await db.health()
    server_version = await db.fetchval("SHOW server_version")
    assert health.server_version == server_version
    assert health.latency_s > 0
    assert health.pool.size >= 1
    assert health.pool.in_use == 0
    assert db.stats().queries["etlstore_health"].calls == 1


async def test_stats_count_calls_errors_and_pool_occupancy(db: etlstore.Database) -> None:
    sql = "-- count_things (sql/things.sql:3)\nSELECT 1 / $1"
    for divisor in (1, 1, 0):
        with contextlib.suppress(etlstore.errors.InvalidValue):
            await db.fetchval(sql, divisor)
    async with db.transaction():
        stats = db.stats()
    counters = stats.queries["count_things"]
    assert (counters.calls, counters.errors) == (3, 1)
    assert counters.total_s >= counters.max_s > 0
    assert stats.pool.in_use == 1
    assert stats.pool.max_size == 4
    assert db.stats().pool.in_use == 0


async def test_password_never_appears_in_reprs_errors_or_logs(
    runtime_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # The test server trusts local connections, so a wrong password still connects.
    async with etlstore.connect(_with_password(runtime_dsn, _CANARY), max_size=1) as db:
        assert _CANARY not in repr(db)
        await db.fetchval("SELECT 1")
        with pytest.raises(asyncpg.UndefinedTableError):
            await db.fetchval("SELECT * FROM no_such_table")
    unreachable = f"postgresql://postgres:{_CANARY}@127.0.0.1:{_closed_port()}/x"
    with pytest.raises(Unavailable) as raised:
        await etlstore.connect(unreachable, connect_timeout=2)
    assert "cannot connect to the database" in str(raised.value)
    assert _CANARY not in str(raised.value)
    assert _CANARY not in repr(raised.value)
    assert _CANARY not in caplog.text


async def test_unknown_database_is_unavailable_naming_it(runtime_dsn: str) -> None:
    with pytest.raises(Unavailable, match='database "no_such_db_x" does not exist'):
        await etlstore.connect(with_database(runtime_dsn, "no_such_db_x"))


async def test_server_restart_while_idle_costs_no_error(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "data", database="postgres", settings={"fsync": "off"})
    dsn = await asyncio.to_thread(server.start)
    try:
        async with etlstore.connect(dsn, min_size=2, max_size=2) as db:
            assert await db.fetchval("SELECT 1") == 1
            pid_before = await db.fetchval("SELECT pg_backend_pid()")
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start)
            assert await db.fetchval("SELECT 2") == 2
            assert await db.fetchval("SELECT pg_backend_pid()") != pid_before
    finally:
        await asyncio.to_thread(server.stop)


def _make_tls_files(directory: Path) -> dict[str, Path]:
    """A CA, and a server certificate it signed for localhost and 127.0.0.1 (openssl CLI)."""
    directory.mkdir()
    files = {name: directory / name for name in ("ca.key", "ca.pem", "server.key", "server.pem")}
    csr, extensions = directory / "server.csr", directory / "san.cnf"
    extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    # openssl x509 -req: certificates valid for 30 days by default.
    ca = ["-CA", files["ca.pem"], "-CAkey", files["ca.key"], "-CAcreateserial"]
    commands = [
        [
            "req",
            "-x509",
            *ec_key,
            "-keyout",
            files["ca.key"],
            "-out",
            files["ca.pem"],
            "-days",
            "2",
            "-subj",
            "/CN=etlstore test CA",
        ],
        ["req", *ec_key, "-keyout", files["server.key"], "-out", csr, "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", csr, *ca, "-out", files["server.pem"], "-extfile", extensions],
    ]
    for command in commands:
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    return files


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@asynccontextmanager
async def _tls_terminating_proxy(backend_port: int, tls: dict[str, Path]) -> AsyncIterator[int]:
    """A TLS front for a server built without SSL: answers SSLRequest, then relays plaintext."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls["server.pem"], tls["server.key"])
    relays: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readexactly(8)
        assert request == struct.pack("!ii", 8, 80877103), "expected an SSLRequest"
        writer.write(b"S")
        await writer.drain()
        try:
            await writer.start_tls(context)
        except (ConnectionError, ssl.SSLError):
            writer.close()  # the client refused our certificate
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", backend_port)
        for task in (_pipe(reader, up_writer), _pipe(up_reader, writer)):
            relays.add(asyncio.create_task(task))

    proxy = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield proxy.sockets[0].getsockname()[1]
    finally:
        proxy.close()
        await asyncio.gather(*relays, return_exceptions=True)
        await proxy.wait_closed()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
async def test_tls_with_verify_full_and_a_ca_from_the_dsn(runtime_dsn: str, tmp_path: Path) -> None:
    tls = _make_tls_files(tmp_path / "tls")
    backend_port = int(urlsplit(runtime_dsn).port or 5432)
    database = urlsplit(runtime_dsn).path
    async with _tls_terminating_proxy(backend_port, tls) as port:
        dsn = (
            f"postgresql://postgres:{_CANARY}@localhost:{port}{database}"
            f"?sslmode=verify-full&sslrootcert={tls['ca.pem']}"
        )
        async with etlstore.connect(dsn, min_size=1, max_size=1) as db:
            assert await db.fetchval("SELECT 1") == 1
            holder = db._fast.take()
            assert holder is not None
            assert holder._con._transport.get_extra_info("ssl_object") is not None
            db._fast.give(holder, holder._con)
        wrong_ca = dsn.replace(str(tls["ca.pem"]), str(tls["server.pem"]))
        with pytest.raises(Unavailable) as raised:
            await etlstore.connect(wrong_ca, max_size=1)
        assert "certificate verify failed" in str(raised.value)
        assert _CANARY not in str(raised.value)
