"""A PgBouncer in transaction pooling mode in front of the test server, 4 server connections.

Skipped, saying why, where Debian's pgbouncer can be neither found nor fetched (tests/_pgbouncer).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

import etlstore
from tests._pgbouncer import PgBouncer, require_pgbouncer, running_pgbouncer

#: Server connections per database: far fewer than the client connections the tests open.
POOL_SIZE = 4
#: Client connections of the ``bouncer_db`` pool.
CLIENTS = 16


@pytest.fixture(scope="session")
def pgbouncer(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgBouncer]:
    """pool_mode = transaction, default_pool_size = POOL_SIZE, in front of ``pg_server``."""
    require_pgbouncer()
    with running_pgbouncer(
        pg_server, tmp_path_factory.mktemp("pgbouncer"), pool_size=POOL_SIZE
    ) as bouncer:
        yield bouncer


@pytest.fixture(scope="session")
def bouncer_dsn(pgbouncer: PgBouncer, migrated_database: str) -> str:
    """The migrated test database, reached through pgbouncer."""
    return pgbouncer.dsn_for(migrated_database)


@pytest.fixture
async def bouncer_db(bouncer_dsn: str) -> AsyncIterator[etlstore.Database]:
    """etlstore in PgBouncer mode with CLIENTS client connections sharing POOL_SIZE servers."""
    async with etlstore.connect(
        bouncer_dsn, pgbouncer=True, min_size=CLIENTS, max_size=CLIENTS
    ) as db:
        yield db
