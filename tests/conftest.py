"""Shared fixtures: a throwaway PostgreSQL per test session, never the developer's data.

With DATABASE_URL set the tests create (and drop) databases of their own on that server; unset,
they start a throwaway embedded cluster with pg_stat_statements loaded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from etlstore._config import asyncpg_dsn, with_database
from etlstore._embedded import EmbeddedPostgres
from etlstore._migrations import apply_migrations

REPO = Path(__file__).resolve().parents[1]
_OWN_BASETEMP = pytest.StashKey[Path]()
MIGRATIONS = REPO / "migrations"

# Durability is not under test here; these make the throwaway cluster several times faster.
_TEST_CLUSTER_SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


def pytest_configure(config: pytest.Config) -> None:
    """Give the session a temporary root of its own, outside /tmp/pytest-of-<user>.

    Clusters run as another system user when the tests run as root, so their data dirs need a
    traversable path; every pytest session resets /tmp/pytest-of-<user> to mode 0700, which would
    cut a running cluster of a concurrent session off from its files.
    """
    if config.option.basetemp is None:
        config.option.basetemp = tempfile.mkdtemp(prefix="etlstore-pytest-")
        config.stash[_OWN_BASETEMP] = Path(config.option.basetemp)


def pytest_unconfigure(config: pytest.Config) -> None:
    own = config.stash.get(_OWN_BASETEMP, None)
    if own is not None:
        shutil.rmtree(own, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A superuser DSN on the server the tests use (a throwaway embedded one by default)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield asyncpg_dsn(url)
        return
    server = EmbeddedPostgres(
        tmp_path_factory.mktemp("pg") / "data", database="postgres", settings=_TEST_CLUSTER_SETTINGS
    )
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()


@pytest.fixture(scope="session")
def embedded_test_server(pg_server: str) -> str:
    """Like pg_server, for tests that need a cluster of their own to start and stop."""
    if os.environ.get("DATABASE_URL"):
        pytest.skip("DATABASE_URL is set: this test needs the embedded test cluster")
    return pg_server


@pytest.fixture(scope="session")
def make_database(pg_server: str) -> Iterator[Callable[[], str]]:
    """A factory of empty databases on the test server; each is dropped when the session ends."""
    created: list[str] = []

    def make() -> str:
        name = f"etlstore_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return with_database(pg_server, name)

    yield make
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for name in created:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def empty_database(make_database: Callable[[], str]) -> str:
    """A new empty database for one test."""
    return make_database()


@pytest.fixture(scope="session")
def migrated_database(make_database: Callable[[], str]) -> str:
    """A database with every migration applied, shared by the session: tests clean up after."""
    dsn = make_database()
    apply_migrations(dsn, MIGRATIONS)
    return dsn
