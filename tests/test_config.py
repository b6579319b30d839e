"""Where the database is: DATABASE_URL in either scheme, or the embedded server."""

from __future__ import annotations

import pytest

from etlstore._config import asyncpg_dsn, resolve_dsn, yoyo_url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@h:5432/d?sslmode=verify-full",
        "postgres://u:p@h:5432/d?sslmode=verify-full",
        "postgresql+psycopg://u:p@h:5432/d?sslmode=verify-full",
    ],
)
def test_both_schemes_convert_to_each_driver_form(url: str) -> None:
    assert asyncpg_dsn(url) == "postgresql://u:p@h:5432/d?sslmode=verify-full"
    assert yoyo_url(url) == "postgresql+psycopg://u:p@h:5432/d?sslmode=verify-full"


def test_database_url_wins_over_the_embedded_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://app@db:5432/etl")

    assert resolve_dsn() == "postgresql://app@db:5432/etl"
