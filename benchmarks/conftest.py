"""Benchmark fixtures: a throwaway PostgreSQL (or DATABASE_URL's server), never the test suite's."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from etlstore._config import asyncpg_dsn
from etlstore._embedded import EmbeddedPostgres


@pytest.fixture(scope="session")
def bench_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A superuser DSN of a server for benchmarks (fsync off: durability is not measured)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield asyncpg_dsn(url)
        return
    server = EmbeddedPostgres(
        tmp_path_factory.mktemp("bench-pg") / "data",
        database="postgres",
        settings={"fsync": "off", "synchronous_commit": "off"},
    )
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()
