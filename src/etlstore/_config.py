"""Where the database is: ``DATABASE_URL`` when set, otherwise the embedded server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from etlstore._embedded import EmbeddedPostgres

__all__ = [
    "asyncpg_dsn",
    "default_embedded",
    "resolve_dsn",
    "throwaway_database",
    "with_database",
    "yoyo_url",
]

_SCHEMES = ("postgresql+psycopg://", "postgres+psycopg://", "postgresql://", "postgres://")

# The embedded server of a working copy: pg_stat_statements is loaded so that statements can be
# counted, as they are in the test clusters.
_EMBEDDED_SETTINGS = {"shared_preload_libraries": "pg_stat_statements"}


def _home() -> Path:
    return Path(os.environ.get("ETLSTORE_HOME", Path.cwd() / ".etlstore"))


def default_embedded() -> EmbeddedPostgres:
    """The working copy's embedded server: data in ``.etlstore/pgdata`` (or ``$ETLSTORE_HOME``)."""
    return EmbeddedPostgres(_home() / "pgdata", settings=_EMBEDDED_SETTINGS)


def _split_scheme(url: str) -> str:
    for scheme in _SCHEMES:
        if url.startswith(scheme):
            return url[len(scheme) :]
    raise ValueError(
        "DATABASE_URL must start with postgresql:// or postgresql+psycopg:// "
        f"(got a URL starting {url.split('://', 1)[0]!r}://)"
    )


def asyncpg_dsn(url: str) -> str:
    """The libpq form of a URL that may carry yoyo's ``+psycopg`` driver suffix."""
    return "postgresql://" + _split_scheme(url)


def yoyo_url(url: str) -> str:
    """The form yoyo-migrations needs to use psycopg 3: ``postgresql+psycopg://``."""
    return "postgresql+psycopg://" + _split_scheme(url)


def resolve_dsn() -> str:
    """``DATABASE_URL`` if set (either scheme accepted), else start or reuse the embedded server."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return asyncpg_dsn(url)
    return default_embedded().start()


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


@contextmanager
def throwaway_database(server_dsn: str, prefix: str) -> Iterator[str]:
    """A new empty database on ``server_dsn``'s server, dropped (sessions and all) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server_dsn, name)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
