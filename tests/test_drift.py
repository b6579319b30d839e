"""``etlstore drift``: the live schema against a throwaway database the migrations built."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from etlstore._deploy import deploy_migrations
from etlstore._drift import find_drift
from etlstore.cli import main

REPO = Path(__file__).resolve().parents[1]
MIGRATIONS = REPO / "migrations"


@pytest.fixture
def deployed_database(make_database: Callable[[], str]) -> str:
    dsn = make_database()
    deploy_migrations(dsn, MIGRATIONS)
    return dsn


def test_a_freshly_deployed_database_has_no_drift(
    deployed_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", deployed_database)
    assert main(["drift"]) == 0
    assert "no drift" in capsys.readouterr().out


def test_drift_names_unknown_missing_and_changed_objects_and_invalid_indexes(
    deployed_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(deployed_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE hotfix_scratch (id int)")
        conn.execute("DROP INDEX pipelines_scheduled_idx")
        conn.execute("ALTER TABLE pipelines ALTER COLUMN timezone SET DEFAULT 'Europe/Paris'")
        # A failed CREATE INDEX CONCURRENTLY leaves an invalid index behind.
        conn.execute("INSERT INTO tags (name) VALUES ('a'), ('b')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY tags_one_idx ON tags ((1))")

    drift = find_drift(deployed_database, MIGRATIONS)

    assert drift.unknown == [
        "column hotfix_scratch.id",
        "index tags_one_idx",
        "relation hotfix_scratch",
    ]
    assert drift.missing == ["index pipelines_scheduled_idx"]
    assert [name for name, _, _ in drift.changed] == ["column pipelines.timezone"]
    assert "Europe/Paris" in drift.changed[0][2]
    assert drift.invalid_indexes == ["tags_one_idx"]
    monkeypatch.setenv("DATABASE_URL", deployed_database)
    assert main(["drift"]) == 1
    report = capsys.readouterr().out
    assert "- index pipelines_scheduled_idx (missing)" in report
    assert "! index tags_one_idx is invalid" in report
