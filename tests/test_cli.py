"""The ``etlstore`` command: embedded database lifecycle, migrate and the main job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from etlstore.cli import main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An ETLSTORE_HOME of its own, so the developer's .etlstore is never touched."""
    monkeypatch.setenv("ETLSTORE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    yield tmp_path / "home"
    main(["db", "stop"])


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_widgets.sql").write_text(
        "CREATE TABLE widgets (id int PRIMARY KEY, name text NOT NULL);\n"
        "CREATE INDEX widgets_name_idx ON widgets (name);\n"
        "INSERT INTO widgets VALUES (1, 'a'), (2, 'b');\n"
    )
    (folder / "0001_widgets.rollback.sql").write_text("DROP TABLE widgets;\n")
    return folder


def test_db_lifecycle_start_status_url_stop(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "start"]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith("postgresql://postgres@127.0.0.1:")
    assert (home / "pgdata" / "PG_VERSION").exists()

    assert main(["db", "status"]) == 0
    assert "running" in capsys.readouterr().out

    assert main(["db", "url"]) == 0
    assert capsys.readouterr().out.strip() == url

    assert main(["db", "stop"]) == 0
    assert capsys.readouterr().out.strip() == "stopped"
    assert main(["db", "status"]) == 0
    assert "stopped" in capsys.readouterr().out


def test_db_url_prefers_database_url(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://someone@db.example:5433/etl")

    assert main(["db", "url"]) == 0
    assert capsys.readouterr().out.strip() == "postgresql://someone@db.example:5433/etl"


def test_db_url_before_any_start_is_a_clear_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "url"]) == 1
    assert "run `etlstore db start`" in capsys.readouterr().err


def test_migrate_applies_pending_migrations_to_database_url(
    home: Path,
    migrations: Path,
    empty_database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database)

    assert main(["migrate", "--migrations", str(migrations)]) == 0
    assert "applied 1 migration(s)\n  0001_widgets" in capsys.readouterr().out
    assert main(["migrate", "--migrations", str(migrations)]) == 0
    assert "applied 0 migration(s)" in capsys.readouterr().out
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT count(*) FROM widgets").fetchone() == (2,)


def test_demo_prints_tables_row_counts_and_indexes(
    home: Path,
    migrations: Path,
    empty_database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database)

    assert main(["demo", "--migrations", str(migrations)]) == 0
    out = capsys.readouterr().out
    assert "1 tables, 2 indexes" in out
    assert any(
        line.split() == ["widgets", "2", "widgets_name_idx,", "widgets_pkey"]
        for line in out.splitlines()
    )
    assert "_yoyo" not in out


def test_unreachable_database_is_an_error_message_not_a_traceback(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nowhere")

    assert main(["migrate"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("etlstore: error: cannot reach the database")
    assert "Traceback" not in err


def test_a_url_of_another_scheme_is_rejected_with_the_accepted_forms(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://root@localhost/db")

    assert main(["migrate"]) == 1
    assert "postgresql://" in capsys.readouterr().err
