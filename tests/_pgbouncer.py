"""Debian's PgBouncer for the tests and benchmarks, fetched into .cache/, never installed.

A ``pgbouncer`` on PATH (or in /usr/sbin) is used as it is. Otherwise ``apt-get download``
fetches Debian's package and those of its shared libraries this machine lacks, ``dpkg-deb -x``
unpacks them under ``.cache/pgbouncer/`` (kept across runs, gitignored) and the binary runs
from there with ``LD_LIBRARY_PATH``: nothing on the system changes. Where that cannot work (no
apt, no network) ``find_pgbouncer`` raises ``PgBouncerUnavailable`` saying what was missing, for
the callers to skip with.

``running_pgbouncer`` starts one in transaction pooling mode on 127.0.0.1, in front of a
PostgreSQL server given by DSN, with ``default_pool_size`` server connections per database and
no prepared statement tracking (``max_prepared_statements = 0``, all there is before 1.21).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest

from etlstore._embedded import _free_port, _run_as

__all__ = [
    "PgBouncer",
    "PgBouncerBinary",
    "PgBouncerUnavailable",
    "find_pgbouncer",
    "require_pgbouncer",
    "running_pgbouncer",
]

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "pgbouncer"
_START_TIMEOUT_S = 10.0


class PgBouncerUnavailable(Exception):
    """No pgbouncer binary could be found or fetched on this machine; the message says why."""


@dataclass(frozen=True, slots=True)
class PgBouncerBinary:
    path: Path
    library_path: str  # for LD_LIBRARY_PATH; "" when the system's libraries suffice
    version: str


@dataclass(frozen=True, slots=True)
class PgBouncer:
    """A running pgbouncer: DSNs through it, its pool size, its log."""

    host: str
    port: int
    user: str
    pool_size: int
    log_file: Path
    version: str

    def dsn_for(self, server_dsn: str) -> str:
        """``server_dsn``'s database (and options) reached through this pgbouncer."""
        parts = urlsplit(server_dsn)
        return urlunsplit(parts._replace(netloc=f"{self.user}@{self.host}:{self.port}"))

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


def find_pgbouncer() -> PgBouncerBinary:
    """The binary to run (fetching Debian's package into .cache/ the first time)."""
    binary, reason = _find()
    if binary is None:
        raise PgBouncerUnavailable(reason)
    return binary


def require_pgbouncer() -> None:
    """Skip the calling test or fixture, saying why, when no pgbouncer can be had here."""
    try:
        find_pgbouncer()
    except PgBouncerUnavailable as exc:
        pytest.skip(f"pgbouncer unavailable: {exc}")


@cache
def _find() -> tuple[PgBouncerBinary | None, str]:
    # Cached with its failure too: one attempt per process, not one per test.
    try:
        return _find_uncached(), ""
    except PgBouncerUnavailable as exc:
        return None, str(exc)


def _find_uncached() -> PgBouncerBinary:
    on_path = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if on_path is not None:
        return _checked(Path(on_path), "")
    root = CACHE / "root"
    if not root.exists():
        _fetch_into(root)
    return _checked(root / "usr" / "sbin" / "pgbouncer", _library_path(root))


def _checked(path: Path, library_path: str) -> PgBouncerBinary:
    result = subprocess.run(
        [str(path), "--version"],
        capture_output=True,
        text=True,
        env=_env(library_path),
        timeout=30,
    )
    match = re.search(r"PgBouncer (\S+)", result.stdout)
    if result.returncode != 0 or match is None:
        raise PgBouncerUnavailable(
            f"{path} --version failed: {(result.stderr or result.stdout).strip()[-500:]}"
        )
    return PgBouncerBinary(path, library_path, match.group(1))


def _env(library_path: str) -> dict[str, str]:
    return dict(os.environ, LD_LIBRARY_PATH=library_path) if library_path else dict(os.environ)


def _library_path(root: Path) -> str:
    libraries = (p for p in root.rglob("*.so*") if re.search(r"\.so(\.\d+)*$", p.name))
    return os.pathsep.join(sorted({str(p.parent) for p in libraries}))


def _fetch_into(root: Path) -> None:
    """Download and unpack pgbouncer and its missing libraries; ``root`` appears atomically."""
    missing = [
        tool
        for tool in ("apt-get", "apt-cache", "dpkg-deb", "dpkg-query")
        if not shutil.which(tool)
    ]
    if missing:
        raise PgBouncerUnavailable(
            f"no pgbouncer on PATH, and no {', '.join(missing)} to fetch Debian's package"
        )
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be fetching it right now
        if root.exists():
            return
        with tempfile.TemporaryDirectory(dir=CACHE, prefix="fetch-") as work:
            packages = ["pgbouncer", *_missing_library_packages()]
            downloaded = _run(["apt-get", "download", *packages], cwd=Path(work))
            if downloaded.returncode != 0:
                raise PgBouncerUnavailable(
                    f"`apt-get download {' '.join(packages)}` failed (no network or no apt "
                    f"lists?): {downloaded.stderr.strip()[-500:]}"
                )
            unpacked = Path(work) / "root"
            for deb in sorted(Path(work).glob("*.deb")):
                extracted = _run(["dpkg-deb", "-x", str(deb), str(unpacked)], cwd=Path(work))
                if extracted.returncode != 0:
                    raise PgBouncerUnavailable(f"dpkg-deb -x {deb.name}: {extracted.stderr}")
            _check_libraries(unpacked)
            unpacked.rename(root)


def _missing_library_packages() -> list[str]:
    """The shared-library packages pgbouncer depends on that are not installed here."""
    depends = _run(["apt-cache", "depends", "--important", "pgbouncer"], cwd=CACHE)
    if depends.returncode != 0:
        raise PgBouncerUnavailable(f"`apt-cache depends pgbouncer` failed: {depends.stderr}")
    names = re.findall(r"^\s*Depends: (lib\S+)", depends.stdout, re.MULTILINE)
    missing = []
    for name in names:
        status = _run(["dpkg-query", "-W", "-f=${Status}", name], cwd=CACHE)
        if "install ok installed" not in status.stdout:
            missing.append(name)
    return missing


def _check_libraries(root: Path) -> None:
    binary = root / "usr" / "sbin" / "pgbouncer"
    if not binary.exists():
        raise PgBouncerUnavailable("Debian's pgbouncer package holds no usr/sbin/pgbouncer")
    if shutil.which("ldd") is None:
        return  # the --version check that follows finds missing libraries too
    linked = subprocess.run(
        ["ldd", str(binary)], capture_output=True, text=True, env=_env(_library_path(root))
    )
    missing = re.findall(r"^\s*(\S+) => not found", linked.stdout, re.MULTILINE)
    if missing:
        raise PgBouncerUnavailable(f"pgbouncer needs shared libraries not found: {missing}")


def _run(args: list[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


@contextmanager
def running_pgbouncer(
    server_dsn: str,
    workdir: Path,
    *,
    pool_size: int = 4,
) -> Iterator[PgBouncer]:
    """A pgbouncer in transaction pooling mode in front of ``server_dsn``'s server.

    Clients log in as the DSN's user without a password (auth_type trust); pgbouncer logs in to
    the server as that user, with the DSN's password if it has one. Stopped at the end.
    """
    binary = find_pgbouncer()
    server = urlsplit(server_dsn)
    user = unquote(server.username or "postgres")
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = workdir / "pgbouncer.ini"
    auth_file = workdir / "users.txt"
    auth_file.write_text(f'"{user}" ""\n')
    login = f" user={user}" + (f" password={unquote(server.password)}" if server.password else "")
    config.write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host={server.hostname or '127.0.0.1'} port={server.port or 5432}{login}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {auth_file}",
                "pool_mode = transaction",
                f"default_pool_size = {pool_size}",
                "max_client_conn = 500",
                # What 1.18 does; later releases may default to tracking prepared statements.
                *(["max_prepared_statements = 0"] if _at_least(binary.version, 1, 21) else []),
            ]
        )
        + "\n"
    )
    log_file = workdir / "pgbouncer.log"
    # pgbouncer refuses to run as root: -u switches to the embedded server's system user once
    # the configuration is read (so it needs no access to these files, and logs to stderr).
    as_user = _run_as()
    command = [str(binary.path), *(["-u", as_user] if as_user else []), str(config)]
    with log_file.open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=_env(binary.library_path)
        )
    try:
        _wait_until_listening(process, port, log_file)
        yield PgBouncer("127.0.0.1", port, user, pool_size, log_file, binary.version)
    finally:
        process.send_signal(signal.SIGTERM)  # immediate shutdown: clients are done or dropped
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _at_least(version: str, major: int, minor: int) -> bool:
    numbers = [int(n) for n in re.findall(r"\d+", version)[:2]]
    return tuple(numbers) >= (major, minor)


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log_file: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited ({process.returncode}):\n{log_file.read_text()}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"pgbouncer did not listen on port {port}:\n{log_file.read_text()}")
