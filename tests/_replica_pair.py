"""A primary and a streaming replica of their own on 127.0.0.1, from the embedded binaries.

Shared by ``tests/replicas`` and ``benchmarks/bench_replicas.py``. The replica is a
``pg_basebackup -R`` of the primary (``-R`` writes ``primary_conninfo`` and ``standby.signal``)
into a data dir of its own, started on a port of its own. Both live under the caller's directory
and are stopped when the ``replica_pair`` block ends, whatever state it left them in.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

import asyncpg

from etlstore._embedded import EmbeddedPostgres, _free_port
from etlstore._migrations import apply_migrations

__all__ = ["Pair", "replica_pair"]

# Durability is not what is tested or measured. synchronous_commit stays on: with it off a
# commit's WAL may wait for the WAL writer (wal_writer_delay) before it is even sent.
_SETTINGS: Final = {"fsync": "off", "full_page_writes": "off", "max_connections": "100"}
_WAIT_S: Final = "60"


class Pair:
    """A primary and its streaming replica; callers may stop, start and pause the replica."""

    def __init__(self, primary: EmbeddedPostgres, replica: EmbeddedPostgres) -> None:
        self.primary = primary
        self.replica = replica
        self.primary_dsn = primary.dsn()
        self.replica_dsn = replica.dsn()

    def stop_replica(self) -> None:
        _pg_ctl(self.replica, "stop", "-m", "fast")

    def start_replica(self) -> None:
        _pg_ctl(self.replica, "start")

    @contextlib.asynccontextmanager
    async def replay_paused(self) -> AsyncIterator[None]:
        """WAL replay paused on the replica for the block (it still receives WAL)."""
        con = await asyncpg.connect(self.replica_dsn)
        try:
            await con.execute("SELECT pg_wal_replay_pause()")
            try:
                yield
            finally:
                await con.execute("SELECT pg_wal_replay_resume()")
        finally:
            await con.close()


def _pg_ctl(server: EmbeddedPostgres, *args: str) -> None:
    # -l: a started postmaster must not inherit pg_ctl's pipes (the call would never return).
    result = server._pg_ctl([*args, "-w", "-t", _WAIT_S, "-l", str(server.log_file)])
    if result.returncode != 0:
        raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {result.stderr or result.stdout}")


def _base_backup(primary: EmbeddedPostgres, data_dir: Path) -> EmbeddedPostgres:
    """A standby of ``primary`` in ``data_dir``, configured for a port of its own, not started."""
    data_dir.mkdir(mode=0o700, parents=True)
    replica = EmbeddedPostgres(data_dir, database=primary.database, settings=_SETTINGS)
    replica._prepare_for_system_user()  # as root: the server's system user owns the dir
    port = primary.port
    assert port is not None
    result = primary._command(
        "pg_basebackup",
        [
            *("-D", str(data_dir), "-R", "-X", "stream", "-c", "fast", "--no-sync"),
            *("-h", "127.0.0.1", "-p", str(port), "-U", "postgres"),
        ],
    )
    if result.returncode != 0:
        raise RuntimeError(f"pg_basebackup failed: {result.stderr}")
    replica._write_conf(_free_port())  # the copied etlstore.conf holds the primary's port
    return replica


@contextlib.contextmanager
def replica_pair(root: Path, *, migrations: Path, database: str) -> Iterator[Pair]:
    """A primary in ``root/primary`` with ``migrations`` applied, and a replica streaming from it.

    Raises ``EmbeddedServerError`` or ``RuntimeError`` when either server cannot be made.
    """
    primary = EmbeddedPostgres(root / "primary", database=database, settings=_SETTINGS)
    replica: EmbeddedPostgres | None = None
    try:
        dsn = primary.start()
        apply_migrations(dsn, migrations)
        replica = _base_backup(primary, root / "replica")
        replica.start()
        yield Pair(primary, replica)
    finally:
        for server in (replica, primary):
            if server is not None and server.status().running:
                server._pg_ctl(["stop", "-m", "immediate", "-w", "-t", _WAIT_S])
