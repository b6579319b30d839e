"""Where the database is: ``DATABASE_URL`` when set, otherwise the embedded server."""

from __future__ import annotations

import os
from pathlib import Path

from etlstore._embedded import EmbeddedPostgres

__all__ = ["asyncpg_dsn", "default_embedded", "resolve_dsn", "yoyo_url"]

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
