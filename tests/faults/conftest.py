"""A cluster of their own per fault-test module: the tests restart, crash, stop and freeze it.

Never the session's cluster (tests/conftest.py): other tests share that one. Durability settings
stay on except fsync: the processes die here, never the operating system, so what reached the
kernel survives, but a commit acknowledged before its WAL was written (synchronous_commit=off)
would not.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from etlstore._embedded import EmbeddedPostgres

_SETTINGS = {"fsync": "off", "full_page_writes": "off", "max_connections": "300"}
_WAIT_S = "60"


class Cluster:
    """An embedded cluster the test may break: fast or crash restarts, outages, freezes."""

    def __init__(self, server: EmbeddedPostgres, dsn: str) -> None:
        self.server = server
        self.dsn = dsn
        self.admin_dsn = server.dsn("postgres")
        self.database = server.database

    def _pg_ctl(self, *args: str) -> None:
        # -l: a started postmaster must not inherit pg_ctl's pipes (the call would never return).
        result = self.server._pg_ctl([*args, "-w", "-t", _WAIT_S, "-l", str(self.server.log_file)])
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {result.stderr or result.stdout}")

    def restart_fast(self) -> None:
        """pg_ctl restart -m fast: sessions are terminated, then the server starts again."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop; ``immediate`` kills every process without a checkpoint (a crash)."""
        self._pg_ctl("stop", "-m", mode)

    def start(self) -> None:
        """pg_ctl start, returning once the server accepts connections (after any recovery)."""
        self._pg_ctl("start")

    def processes(self) -> list[int]:
        """The pids of the postmaster, then of every process it started (all its children)."""
        pid_file = self.server.data_dir / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0])
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    # The command may contain spaces and parentheses: fields follow the last ")".
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[1]) == postmaster:
                        children.append(int(entry.name))
        return [postmaster, *children]

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Every process of the cluster stopped (SIGSTOP) for the block, then continued."""
        stopped: list[int] = []
        try:
            # The postmaster first: once it is stopped it cannot start new children.
            for pid in self.processes():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                    stopped.append(pid)
            yield
        finally:
            for pid in reversed(stopped):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A new cluster for the module; stopped at the end whatever state the tests left it in."""
    data_dir: Path = tmp_path_factory.mktemp("faults") / "data"
    server = EmbeddedPostgres(data_dir, database="faults", settings=_SETTINGS)
    dsn = server.start()
    try:
        yield Cluster(server, dsn)
    finally:
        with contextlib.suppress(Exception):
            for pid in Cluster(server, dsn).processes():
                os.kill(pid, signal.SIGCONT)
        if server.status().running:
            server._pg_ctl(["stop", "-m", "immediate", "-w", "-t", _WAIT_S])
