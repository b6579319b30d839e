"""Read aiosql-format SQL files without a database: names, operations, parameters, docs, lines.

The query header (``-- name: get_pipeline(id)^``) is read with aiosql's own grammar, so every file
we accept also loads with aiosql. The rest is done here because aiosql's loader loses line numbers
after block comments, takes any ``--`` line in a statement for documentation, and finds ``:name``
parameters with a regular expression that also matches inside comments and dollar-quoted strings.
Parameters are found with PostgreSQL's own scanner (through pglast) instead.
"""

from __future__ import annotations

import itertools
import keyword
import re
from pathlib import Path

import msgspec
from aiosql.query_loader import _BAD_PREFIX, _NAME_OP
from pglast import parser as pg_parser
from pglast.parser import ParseError as PgParseError

__all__ = [
    "Directive",
    "ParsedFile",
    "ParsedQuery",
    "SourceError",
    "parse_file",
    "parse_sql_dir",
    "to_positional",
]

_HEADER = re.compile(r"^\s*--\s*name\s*:\s*(?P<spec>.*?)\s*$")
_COMMENT = re.compile(r"^\s*--\s?(?P<text>.*?)\s*$")
_DIRECTIVE = re.compile(r"^@(?P<name>\w+)\s*(?P<arg>.*)$")
# @vet is read by codegen._vet (`-- @vet allow <rule>: <reason>`).
_KNOWN_DIRECTIVES = ("nullable", "json", "vet")
# Operations whose parameter list aiosql does not require (it requires one for the others).
_OPTIONAL_PARAM_LIST = ("#", "*!", "<!")


class SourceError(msgspec.Struct, frozen=True, order=True):
    """A mistake in a user's file, reported as ``<file>:<line>: <message>``."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class Directive(msgspec.Struct, frozen=True):
    """A ``-- @name argument`` line of a query's doc comment."""

    name: str
    argument: str
    line: int


class ParsedQuery(msgspec.Struct, frozen=True):
    """One query as written, with its ``:name`` parameters turned into ``$n``."""

    name: str
    operation: str
    line: int
    """The line of the ``-- name:`` header."""
    sql_line: int
    """The line the statement starts on: server error positions are counted from here."""
    doc: str
    directives: tuple[Directive, ...]
    sql: str
    params: tuple[str, ...]
    """Parameter names in ``$n`` order (first appearance)."""


class ParsedFile(msgspec.Struct, frozen=True):
    source: str
    stem: str
    queries: tuple[ParsedQuery, ...]


def to_positional(sql: str) -> tuple[str, tuple[str, ...], tuple[tuple[str, int], ...]]:
    """Replace ``:name`` by ``$n``; return the SQL, names in ``$n`` order, and (name, offset) uses.

    Raises pglast's ParseError when the text cannot be scanned (an unterminated string).
    """
    data = sql.encode()
    tokens = pg_parser.scan(sql)
    pieces: list[bytes] = []
    names: list[str] = []
    uses: list[tuple[str, int]] = []
    done = 0
    for colon, word in itertools.pairwise(tokens):
        if colon.name != "ASCII_58" or word.start != colon.end + 1:
            continue
        text = data[word.start : word.end + 1].decode()
        if not re.fullmatch(r"\w+", text):
            continue
        if text not in names:
            names.append(text)
        pieces += [data[done : colon.start], f"${names.index(text) + 1}".encode()]
        done = word.end + 1
        uses.append((text, len(data[: colon.start].decode())))
    pieces.append(data[done:])
    return b"".join(pieces).decode(), tuple(names), tuple(uses)


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset)


def _positional_params_used(sql: str) -> bool:
    try:
        return any(t.name == "PARAM" for t in pg_parser.scan(sql))
    except PgParseError:
        return False


def _parse_query(
    source: str, lines: list[str], start: int, end: int, errors: list[SourceError]
) -> ParsedQuery | None:
    """Parse lines[start:end] (0-based; lines[start] is the header)."""
    header_line = start + 1
    spec = _HEADER.match(lines[start])
    assert spec is not None
    text = spec.group("spec").replace("-", "_")
    matched = _NAME_OP.match(text)
    if matched is None or _BAD_PREFIX.match(text):
        errors.append(
            SourceError(
                source,
                header_line,
                f"invalid query header {spec.group('spec')!r}: expected "
                "`-- name: <name>(<param>, ...)<op>` with op one of ^ $ ! <! *! # or none",
            )
        )
        return None
    name, op, raw_params = matched.group("name"), matched.group("op"), matched.group("params")
    declared = (
        None if raw_params is None else [p.strip() for p in raw_params.split(",") if p.strip()]
    )
    if keyword.iskeyword(name):
        errors.append(SourceError(source, header_line, f"query name {name!r} is a Python keyword"))
        return None
    doc_lines: list[str] = []
    directives: list[Directive] = []
    index = start + 1
    while index < end and (comment := _COMMENT.match(lines[index])):
        body = comment.group("text")
        if directive := _DIRECTIVE.match(body):
            if directive.group("name") not in _KNOWN_DIRECTIVES:
                errors.append(
                    SourceError(
                        source,
                        index + 1,
                        f"unknown directive @{directive.group('name')} in {name} (known: "
                        + ", ".join(f"@{d}" for d in _KNOWN_DIRECTIVES)
                        + ")",
                    )
                )
            else:
                directives.append(
                    Directive(directive.group("name"), directive.group("arg").strip(), index + 1)
                )
        elif not body.startswith("record_class:"):
            doc_lines.append(body)
        index += 1
    while index < end and not lines[index].strip():
        index += 1
    body_lines = lines[index:end]
    raw_sql = "\n".join(body_lines).rstrip().rstrip(";").rstrip()
    if not raw_sql:
        errors.append(SourceError(source, header_line, f"query {name} has no SQL statement"))
        return None
    sql_line = index + 1
    if op == "#":
        return ParsedQuery(
            name, op, header_line, sql_line, "\n".join(doc_lines).strip(), (), raw_sql, ()
        )
    try:
        sql, params, uses = to_positional(raw_sql)
    except PgParseError as exc:
        errors.append(SourceError(source, sql_line, f"cannot scan {name}: {exc}"))
        return None
    found_errors = False
    if _positional_params_used(raw_sql):
        errors.append(
            SourceError(source, sql_line, f"{name}: use named :parameters, not $n placeholders")
        )
        found_errors = True
    if declared is None and op not in _OPTIONAL_PARAM_LIST:
        errors.append(
            SourceError(
                source,
                header_line,
                f"{name}: declare its parameters, e.g. `-- name: {name}("
                + ", ".join(params)
                + f"){op}` (aiosql requires the list for this operation)",
            )
        )
        found_errors = True
    if declared is not None:
        reported: set[str] = set()
        for param, offset in uses:
            if param not in declared and param not in reported:
                reported.add(param)
                errors.append(
                    SourceError(
                        source,
                        sql_line + _line_of(raw_sql, offset),
                        f"{name}: parameter :{param} is not declared in the header",
                    )
                )
                found_errors = True
        for param in declared:
            if param not in params:
                errors.append(
                    SourceError(
                        source, header_line, f"{name}: declared parameter {param} is never used"
                    )
                )
                found_errors = True
    for param in params:
        if keyword.iskeyword(param) or param == "executor":
            errors.append(
                SourceError(source, header_line, f"{name}: parameter name {param!r} is reserved")
            )
            found_errors = True
    if found_errors:
        return None
    doc = "\n".join(doc_lines).strip()
    return ParsedQuery(name, op, header_line, sql_line, doc, tuple(directives), sql, params)


def parse_file(text: str, source: str, stem: str) -> tuple[ParsedFile, list[SourceError]]:
    """Parse one file's text; ``source`` is the name used in errors and headers."""
    errors: list[SourceError] = []
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _HEADER.match(line)]
    queries: list[ParsedQuery] = []
    for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        query = _parse_query(source, lines, start, end, errors)
        if query is not None:
            queries.append(query)
    return ParsedFile(source, stem, tuple(queries)), errors


def parse_sql_dir(sql_dir: Path, display_dir: str) -> tuple[list[ParsedFile], list[SourceError]]:
    """Parse every ``*.sql`` file of a directory, in name order, and check names are unique."""
    files: list[ParsedFile] = []
    errors: list[SourceError] = []
    if not sql_dir.is_dir():
        return files, errors
    for path in sorted(sql_dir.glob("*.sql")):
        source = f"{display_dir}/{path.name}"
        if not path.stem.isidentifier() or keyword.iskeyword(path.stem):
            errors.append(
                SourceError(source, 1, f"file name {path.stem!r} is not a Python module name")
            )
            continue
        if path.stem in ("models", "_executor"):
            errors.append(SourceError(source, 1, f"file name {path.stem!r} is reserved"))
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            errors.append(SourceError(source, 1, f"not UTF-8 text: {exc}"))
            continue
        parsed, file_errors = parse_file(text, source, path.stem)
        files.append(parsed)
        errors += file_errors
    seen: dict[str, tuple[str, int]] = {}
    for parsed in files:
        for query in parsed.queries:
            if query.name in seen:
                first_source, first_line = seen[query.name]
                errors.append(
                    SourceError(
                        parsed.source,
                        query.line,
                        f"duplicate query name {query.name} (first defined at "
                        f"{first_source}:{first_line})",
                    )
                )
            else:
                seen[query.name] = (parsed.source, query.line)
    return files, sorted(errors)
