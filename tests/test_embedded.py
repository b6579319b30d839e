"""The embedded PostgreSQL: created once, reused, reachable over TCP, with clear errors."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from etlstore._embedded import (
    DataDirVersionMismatch,
    EmbeddedPostgres,
    PortInUse,
    ServerStartFailed,
    binaries_version,
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    cluster = EmbeddedPostgres(tmp_path / "pgdata", settings={"fsync": "off"})
    yield cluster
    cluster.stop()


def test_start_creates_a_cluster_reachable_over_tcp_on_loopback(server: EmbeddedPostgres) -> None:
    dsn = server.start()

    assert dsn.startswith("postgresql://postgres@127.0.0.1:")
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT current_database(), inet_server_addr()::text").fetchone()
    assert row == ("etlstore", "127.0.0.1/32")


def test_second_start_reuses_the_running_server_and_its_port(server: EmbeddedPostgres) -> None:
    first = server.start()
    pid = server.status().pid

    assert server.start() == first
    assert server.status().pid == pid


def test_data_and_port_survive_a_stop_and_start(server: EmbeddedPostgres) -> None:
    dsn = server.start()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (42)")

    assert server.stop() is True
    assert server.status().running is False
    assert server.start() == dsn
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT n FROM kept").fetchone() == (42,)


def test_stop_of_a_stopped_server_reports_not_running(server: EmbeddedPostgres) -> None:
    server.start()
    server.stop()

    assert server.stop() is False


def test_status_before_the_first_start_says_not_created(tmp_path: Path) -> None:
    status = EmbeddedPostgres(tmp_path / "never").status()

    assert (status.initialized, status.running, status.port) == (False, False, None)
    assert status.version == binaries_version()


def test_settings_are_applied_to_the_cluster(tmp_path: Path) -> None:
    cluster = EmbeddedPostgres(
        tmp_path / "pgdata", settings={"shared_preload_libraries": "pg_stat_statements"}
    )
    try:
        with psycopg.connect(cluster.start()) as conn:
            row = conn.execute("SHOW shared_preload_libraries").fetchone()
        assert row == ("pg_stat_statements",)
    finally:
        cluster.stop()


def test_a_taken_port_is_a_clear_error_naming_the_port(server: EmbeddedPostgres) -> None:
    server.start()
    server.stop()
    port = server.port
    assert port is not None

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        # The stopped server's closed connections may sit in TIME_WAIT on this port.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(PortInUse, match=f"port {port} on 127.0.0.1.*--port"):
            server.start()


def test_start_on_a_new_port_moves_the_server(server: EmbeddedPostgres) -> None:
    old = server.start()
    server.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        new_port = probe.getsockname()[1]

    new = server.start(port=new_port)

    assert new != old
    assert new.endswith(f":{new_port}/etlstore")
    assert server.port == new_port


def test_a_data_dir_of_another_major_version_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    (data_dir / "PG_VERSION").write_text("9\n")

    with pytest.raises(DataDirVersionMismatch, match="PostgreSQL 9 cluster"):
        EmbeddedPostgres(data_dir).start()


def test_a_failed_start_shows_the_tail_of_the_server_log(tmp_path: Path) -> None:
    cluster = EmbeddedPostgres(tmp_path / "pgdata", settings={"no_such_setting": "1"})

    with pytest.raises(ServerStartFailed, match="no_such_setting"):
        cluster.start()
