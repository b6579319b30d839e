"""``python -m codegen docs``: the three files of a tiny project, and --check."""

from __future__ import annotations

from pathlib import Path

import pytest

from codegen._cli import main

_SCHEMA = """
CREATE TABLE widgets (
    id integer PRIMARY KEY,
    name text NOT NULL DEFAULT 'unnamed',
    owner_id integer NOT NULL
);
COMMENT ON TABLE widgets IS 'Things we make.';
COMMENT ON COLUMN widgets.name IS 'What the widget is called.';
CREATE INDEX widgets_owner_id_id_idx ON widgets (owner_id, id);
CREATE TABLE parts (
    id integer PRIMARY KEY,
    widget_id integer REFERENCES widgets (id),
    label text NOT NULL
);
COMMENT ON TABLE parts IS 'What widgets are made of. @vet small: a catalogue of a few dozen';
CREATE INDEX parts_widget_id_idx ON parts (widget_id);
"""
_QUERIES = """-- name: list_owner_widgets(owner_id, limit)
-- A page of an owner's widgets.
SELECT w.id, w.name, p.label AS part_label
FROM widgets AS w
LEFT JOIN parts AS p ON p.widget_id = w.id
WHERE w.owner_id = :owner_id
ORDER BY w.id
LIMIT :limit;
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_server: str) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.codegen]\nsql = "sql"\nmigrations = "db"\nout = "gen"\npackage = "gen"\n'
    )
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "0001_schema.sql").write_text(_SCHEMA)
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "widgets.sql").write_text(_QUERIES)
    assert main(["docs", "--dsn", pg_server]) == 0
    return tmp_path


def test_queries_doc_gives_parameters_columns_with_reasons_and_the_indexes_used(
    project: Path,
) -> None:
    text = (project / "docs" / "queries.md").read_text()
    assert "### `list_owner_widgets`\n\n`sql/widgets.sql:1` · returns rows (a list)" in text
    assert "A page of an owner's widgets." in text
    assert "| `owner_id` | int4 | `int` |" in text
    assert "| `name` | text | `str` | non-null: widgets.name is NOT NULL |" in text
    assert "| `part_label` | text | `str \\| None` | nullable: right side of LEFT JOIN p |" in text
    assert "Plan uses: `widgets_owner_id_id_idx`, `parts_widget_id_idx`\n" in text


def test_schema_doc_has_columns_indexes_keys_and_a_mermaid_er_diagram(project: Path) -> None:
    text = (project / "docs" / "schema.md").read_text()
    assert "```mermaid\nerDiagram\n    parts {\n        int4 id PK\n" in text
    assert '    widgets |o--o{ parts : "widget_id"\n' in text
    assert "Things we make." in text
    assert "| `name` | text | not null | `'unnamed'::text` | What the widget is called. |" in text
    assert "- `widgets_owner_id_id_idx`: btree (owner_id, id)\n" in text
    assert "- `parts_widget_id_fkey`: (widget_id) -> `widgets`\n" in text
    assert "Declared small for `vet`: a catalogue of a few dozen" in text
    assert "![ER diagram](schema.svg)" in text


def test_svg_shows_every_table_and_records_its_source(project: Path) -> None:
    svg = (project / "docs" / "schema.svg").read_text()
    assert svg.startswith('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<!-- source')
    assert ">widgets</text>" in svg
    assert ">parts</text>" in svg


def test_check_passes_when_current_and_names_what_a_migration_made_stale(
    project: Path, pg_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["docs", "--dsn", pg_server, "--check"]) == 0
    (project / "db" / "0002_colour.sql").write_text(
        "-- depends: 0001_schema\nALTER TABLE widgets ADD COLUMN colour text;\n"
    )
    before = (project / "docs" / "schema.md").read_text()
    assert main(["docs", "--dsn", pg_server, "--check"]) == 1
    err = capsys.readouterr().err
    assert "codegen docs: stale: docs/schema.md" in err
    assert "codegen docs: stale: docs/schema.svg" in err
    assert "codegen docs: stale: docs/queries.md" not in err
    assert (project / "docs" / "schema.md").read_text() == before
