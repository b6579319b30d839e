"""``python -m codegen vet``: each rule on a tiny project, run on the session's test server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from codegen._cli import main

_SCHEMA = """
CREATE TABLE owners (id integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE widgets (
    id integer PRIMARY KEY,
    owner_id integer NOT NULL,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX widgets_owner_id_idx ON widgets (owner_id);
CREATE TABLE parts (id integer PRIMARY KEY, widget_id integer NOT NULL, label text NOT NULL);
"""


class Project:
    """A project directory: pyproject.toml, db/ (migrations) and sql/."""

    def __init__(self, root: Path, dsn: str) -> None:
        self.root = root
        self.dsn = dsn
        (root / "pyproject.toml").write_text('[tool.codegen]\nsql = "sql"\nmigrations = "db"\n')
        (root / "db").mkdir()
        (root / "sql").mkdir()
        self.migration("0001_schema", _SCHEMA)

    def migration(self, name: str, text: str) -> None:
        (self.root / "db" / f"{name}.sql").write_text(text)

    def queries(self, text: str, name: str = "widgets") -> None:
        (self.root / "sql" / f"{name}.sql").write_text(text)

    def vet(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
        code = main(["vet", "--dsn", self.dsn, *args])
        return code, capsys.readouterr().out.splitlines()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_server: str) -> Project:
    monkeypatch.chdir(tmp_path)
    return Project(tmp_path, pg_server)


_BY_NAME = """-- name: list_widgets_named(name, limit)
-- Widgets with a name.
SELECT id, name
FROM widgets
WHERE name = :name
LIMIT :limit;
"""


def test_query_without_usable_index_fails_at_the_line_of_its_table(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.queries(_BY_NAME)
    code, lines = project.vet(capsys)
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith("sql/widgets.sql:4: seqscan: list_widgets_named: ")
    assert "widgets" in lines[0]


def test_adding_the_index_in_a_migration_makes_the_query_pass(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.queries(_BY_NAME)
    project.migration(
        "0002_widget_names",
        "-- depends: 0001_schema\nCREATE INDEX widgets_name_idx ON widgets (name);\n",
    )
    assert project.vet(capsys) == (0, [])


def test_opted_out_query_passes_and_its_reason_is_printed(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.queries(
        _BY_NAME.replace(
            "-- Widgets with a name.\n",
            "-- Widgets with a name.\n-- @vet allow seqscan: admin report, runs nightly\n",
        )
    )
    code, lines = project.vet(capsys)
    assert code == 0
    assert lines[0].startswith(
        "sql/widgets.sql:5: seqscan: allowed (admin report, runs nightly): list_widgets_named: "
    )


def test_seq_scan_inside_a_join_is_caught_not_only_the_top_node(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.queries(
        """-- name: list_owner_parts(owner_id)
-- The parts of an owner's widgets.
SELECT p.id, p.label
FROM widgets AS w
JOIN parts AS p ON p.widget_id = w.id
WHERE w.owner_id = :owner_id;
"""
    )
    code, lines = project.vet(capsys)
    assert code == 1
    failures = [line for line in lines if ": seqscan: " in line]
    assert len(failures) == 1
    assert failures[0].startswith("sql/widgets.sql:5: seqscan: list_owner_parts: ")
    assert "parts" in failures[0]


def test_index_scan_filtering_in_key_order_under_a_limit_is_caught(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.queries(
        """-- name: list_widgets_named_by_id(name, limit)
-- Widgets with a name, by id: the primary key gives the order, not the name.
SELECT id, name
FROM widgets
WHERE name = :name
ORDER BY id
LIMIT :limit;
"""
    )
    code, lines = project.vet(capsys)
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith(
        "sql/widgets.sql:4: seqscan: list_widgets_named_by_id: Index Scan on widgets reads all "
        "of it through widgets_pkey"
    )


_PAGE = """-- name: list_owner_widgets(owner_id, limit)
-- A page of an owner's widgets, oldest first.
SELECT id, name
FROM widgets
WHERE owner_id = :owner_id
ORDER BY created_at, id
LIMIT :limit;
"""


def test_sort_for_keyset_pagination_without_an_index_is_caught(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.queries(_PAGE)
    code, lines = project.vet(capsys)
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith("sql/widgets.sql:4: sort: list_owner_widgets: sorts rows of widgets")


def test_an_index_in_the_order_of_the_page_serves_the_sort(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.queries(_PAGE)
    project.migration(
        "0002_pages",
        "-- depends: 0001_schema\n"
        "CREATE INDEX widgets_owner_page_idx ON widgets (owner_id, created_at, id);\n",
    )
    assert project.vet(capsys) == (0, [])


def test_many_query_without_limit_warns_and_passes(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.queries(
        """-- name: list_widgets_of_owner(owner_id)
-- Every widget of an owner.
SELECT id, name FROM widgets WHERE owner_id = :owner_id;
"""
    )
    code, lines = project.vet(capsys)
    assert code == 0
    assert lines == [
        "sql/widgets.sql:1: unbounded: warning: list_widgets_of_owner: returns rows of widgets "
        "with no LIMIT; page it, or allow it with the reason it stays small"
    ]


def test_small_tables_may_be_scanned_whole(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.migration(
        "0002_small",
        "-- depends: 0001_schema\n"
        "COMMENT ON TABLE owners IS 'Who owns widgets. @vet small: one per team';\n",
    )
    project.queries(
        """-- name: list_owners_named(name)^
-- An owner by name.
SELECT id FROM owners WHERE name = :name;
"""
    )
    assert project.vet(capsys) == (0, [])


def test_foreign_key_without_a_leading_index_is_reported_at_its_migration_line(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.migration(
        "0002_links",
        "-- depends: 0001_schema\n"
        "CREATE TABLE links (\n"
        "    id integer PRIMARY KEY,\n"
        "    widget_id integer NOT NULL REFERENCES widgets (id),\n"
        "    owner_id integer NOT NULL REFERENCES owners (id)\n"
        ");\n"
        "CREATE INDEX links_owner_id_id_idx ON links (owner_id, id);\n",
    )
    code, lines = project.vet(capsys)
    assert code == 1
    assert lines == [
        "db/0002_links.sql:4: fk-index: foreign key links_widget_id_fkey of links (widget_id) "
        "-> widgets has no index leading with these columns: deleting a widgets row scans links"
    ]


def test_select_star_and_bad_directives_are_reported(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.queries(
        """-- name: get_widget(id)^
-- A widget.
-- @vet allow speed: fast enough
-- @vet allow seqscan
SELECT *
FROM widgets WHERE id = :id;
"""
    )
    code, lines = project.vet(capsys)
    assert code == 1
    assert lines == [
        "sql/widgets.sql:3: directive: get_widget: unknown rule 'speed' (rules: seqscan, sort, "
        "unbounded, select-star, fk-index)",
        "sql/widgets.sql:4: directive: get_widget: expected `-- @vet allow <rule>[, <rule>]: "
        "<reason>`, got 'allow seqscan'",
        "sql/widgets.sql:5: select-star: get_widget: SELECT * (list the columns; the generator "
        "rejects it too)",
    ]


def _git(repo: Path, *args: str) -> None:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env=env,
    )


def test_renaming_a_column_the_previous_release_reads_fails_vet_against(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.queries(
        """-- name: get_widget(id)^
-- A widget.
SELECT id,
       name
FROM widgets WHERE id = :id;
"""
    )
    _git(project.root, "init", "-q", "-b", "main")
    _git(project.root, "add", ".")
    _git(project.root, "commit", "-q", "-m", "release 1")
    _git(project.root, "tag", "v1")
    project.migration(
        "0002_rename",
        "-- depends: 0001_schema\nALTER TABLE widgets RENAME COLUMN name TO title;\n",
    )
    project.queries(
        """-- name: get_widget(id)^
-- A widget.
SELECT id, title FROM widgets WHERE id = :id;
"""
    )
    _git(project.root, "add", ".")
    _git(project.root, "commit", "-q", "-m", "release 2")
    assert project.vet(capsys) == (0, [])
    code, lines = project.vet(capsys, "--against", "v1")
    assert code == 1
    assert lines == ['sql/widgets.sql:4: against v1: get_widget: column "name" does not exist']


def test_vet_against_an_unknown_ref_is_an_error(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.queries(_BY_NAME)
    _git(project.root, "init", "-q", "-b", "main")
    code = main(["vet", "--dsn", project.dsn, "--against", "no-such-ref"])
    assert code == 1
    assert "git archive no-such-ref" in capsys.readouterr().err


def test_foreign_key_allowed_by_its_constraint_comment_passes_with_the_reason(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.migration(
        "0002_links",
        "-- depends: 0001_schema\n"
        "CREATE TABLE links (id integer PRIMARY KEY, widget_id integer REFERENCES widgets (id));\n"
        "COMMENT ON CONSTRAINT links_widget_id_fkey ON links IS "
        "'@vet allow fk-index: widgets are never deleted';\n",
    )
    code, lines = project.vet(capsys)
    assert code == 0
    assert lines == [
        "db/0002_links.sql:3: fk-index: allowed (widgets are never deleted): foreign key "
        "links_widget_id_fkey of links (widget_id) -> widgets has no index leading with these "
        "columns: deleting a widgets row scans links"
    ]


def test_an_opt_out_that_allows_nothing_is_a_warning(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.queries(
        """-- name: get_widget(id)^
-- A widget.
-- @vet allow sort: pages are short
SELECT id, name FROM widgets WHERE id = :id;
"""
    )
    assert project.vet(capsys) == (
        0,
        [
            "sql/widgets.sql:3: directive: warning: get_widget: allows sort but vet finds "
            "nothing to allow; remove it"
        ],
    )
