"""Describe each parsed statement on a live, migrated database and build the IR.

The server is the authority on types: each statement is prepared and described over libpq
(parameter types, result names and type OIDs, source table and column). Result nullability comes
from codegen._nullability; whether ``^``/``$``/``<!`` may come back empty is decided here from the
statement's shape.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import psycopg
from pglast import ast as pg_ast
from psycopg import pq

from codegen._catalog import (
    Catalog,
    CatalogColumn,
    CatalogTable,
    SchemaInfo,
    TypeResolver,
    class_name,
    load_schema,
    python_name,
)
from codegen._ir import Column, CopySpec, Module, Package, Param, Query, TypeRef
from codegen._nullability import Nullability, NullabilityParseError, infer_nullability
from codegen._parse import ParsedFile, ParsedQuery, SourceError
from codegen._shape import always_one_row, insert_always_returns, parse_statement, star_offsets
from etlstore._migrations import apply_migrations

__all__ = ["analyze", "analyze_database"]

# Names a @json type may use besides the generated models and enums.
_JSON_TYPE_NAMES = frozenset(
    {"list", "dict", "tuple", "str", "int", "float", "bool", "None", "object"}
    | {"UUID", "datetime", "date", "time", "timedelta", "Decimal"}
)


def _catalog(schema: SchemaInfo, search_path: tuple[str, ...]) -> Catalog:
    tables = []
    for oid, model in schema.relations.items():
        if schema.kinds[oid] == "c":
            continue
        columns = tuple(
            CatalogColumn(f.pg_name or f.name, not_null)
            for f, not_null in zip(model.fields, schema.not_null[oid], strict=True)
        )
        tables.append(CatalogTable(model.schema, model.table, columns))
    return Catalog(tuple(tables), search_path)


def _error_line(query: ParsedQuery, position: str | None) -> int:
    if not position or not position.isdigit():
        return query.line
    return query.sql_line + query.sql.count("\n", 0, int(position) - 1)


def _server_message(query: ParsedQuery, result: pq.abc.PGresult) -> str:
    primary = (result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode()
    hint = (result.error_field(pq.DiagnosticField.MESSAGE_HINT) or b"").decode()

    def named(match: re.Match[str]) -> str:
        index = int(match.group(1)) - 1
        return f":{query.params[index]}" if index < len(query.params) else match.group(0)

    message = re.sub(r"\$(\d+)", named, primary)
    return f"{query.name}: {message}" + (f" (hint: {hint})" if hint else "")


class _QueryAnalyzer:
    def __init__(
        self,
        conn: psycopg.Connection[tuple[object, ...]],
        schema: SchemaInfo,
        resolver: TypeResolver,
        source: str,
    ) -> None:
        self._conn = conn
        self._schema = schema
        self._resolver = resolver
        row = conn.execute("SELECT current_schemas(false)").fetchone()
        schemas = row[0] if row else None
        search_path = tuple(map(str, schemas)) if isinstance(schemas, list) else ("public",)
        self._catalog = _catalog(schema, search_path)
        self._source = source
        self._model_names = {m.name for m in schema.models} | {e.name for e in schema.enums}
        self.errors: list[SourceError] = []

    def _error(self, line: int, message: str) -> None:
        self.errors.append(SourceError(self._source, line, message))

    def analyze(self, query: ParsedQuery) -> Query | None:
        if query.operation == "#":
            return Query(
                query.name, "#", query.line, query.doc, query.sql, (), (), "", False, False
            )
        stmt = parse_statement(query.sql)
        if isinstance(stmt, pg_ast.CopyStmt):
            return self._copy(query, stmt)
        if stmt is not None and (stars := star_offsets(stmt)):
            data = query.sql.encode()
            for offset in stars:
                line = query.sql_line + data[:offset].count(b"\n")
                self._error(
                    line, f"{query.name}: SELECT * is not allowed; list the columns you need"
                )
            return None
        pgconn = self._conn.pgconn
        prepared = pgconn.prepare(b"", query.sql.encode())
        if prepared.status != pq.ExecStatus.COMMAND_OK:
            position = prepared.error_field(pq.DiagnosticField.STATEMENT_POSITION)
            self._error(
                _error_line(query, position.decode() if position else None),
                _server_message(query, prepared),
            )
            return None
        described = pgconn.describe_prepared(b"")
        params = self._params(query, described)
        nullable_params = {p.position for p in params or () if p.nullable}
        columns = self._columns(query, described, nullable_params)
        if params is None or columns is None:
            return None
        if query.operation in ("", "^", "$", "<!") and not columns:
            self._error(
                query.line,
                f"{query.name}: operation {query.operation or '(rows)'} needs "
                "a statement that returns rows (add RETURNING, or use !)",
            )
            return None
        row, row_is_model = self._row_type(query, described, columns)
        if row and not row_is_model and row in self._model_names:
            self._error(query.line, f"{query.name}: its row class {row} clashes with a model")
            return None
        optional = True
        if query.operation == "<!":
            optional = stmt is None or not insert_always_returns(stmt)
        elif query.operation == "$":
            optional = columns[0].nullable or stmt is None or not always_one_row(stmt)
        return Query(
            query.name,
            query.operation,
            query.line,
            query.doc,
            query.sql,
            params,
            columns,
            row if query.operation not in ("!", "*!", "$") else "",
            row_is_model,
            optional,
        )

    def _params(self, query: ParsedQuery, described: pq.abc.PGresult) -> tuple[Param, ...] | None:
        nullable: set[str] = set()
        ok = True
        for directive in query.directives:
            if directive.name != "nullable":
                continue
            for name in (n.strip().lstrip(":") for n in directive.argument.split(",")):
                if name not in query.params:
                    self._error(
                        directive.line,
                        f"{query.name}: @nullable names {name!r}, which is not a parameter",
                    )
                    ok = False
                nullable.add(name)
        params = []
        for index, name in enumerate(query.params):
            type_ = self._resolver.resolve(described.param_type(index), parameter=True)
            if type_.kind == "composite":
                self._error(
                    query.line,
                    f"{query.name}: parameter :{name} has a composite type, "
                    "which generated code cannot pass",
                )
                ok = False
            params.append(Param(name, index + 1, type_, name in nullable))
        return tuple(params) if ok else None

    def _columns(
        self, query: ParsedQuery, described: pq.abc.PGresult, nullable_params: set[int]
    ) -> tuple[Column, ...] | None:
        count = described.nfields
        if count == 0:
            return ()
        try:
            nullability = infer_nullability(
                query.sql, self._catalog, nullable_params=frozenset(nullable_params)
            )
        except NullabilityParseError as exc:
            nullability = [Nullability(True, exc.reason)] * count
        if len(nullability) != count:
            nullability = []
        json_types = self._json_types(query)
        columns: list[Column] = []
        ok = True
        seen: set[str] = set()
        for index in range(count):
            raw = (described.fname(index) or b"").decode()
            name = raw.rstrip("!?")
            if raw.endswith("!"):
                nullable, reason = False, "non-null: forced by the ! marker"
            elif raw.endswith("?"):
                nullable, reason = True, "nullable: forced by the ? marker"
            elif nullability:
                nullable, reason = nullability[index].nullable, nullability[index].reason
            else:
                nullable, reason = True, "nullable: the nullability analysis gave no answer"
            if not name.isidentifier() or name == "_":
                self._error(
                    query.line,
                    f"{query.name}: result column {index + 1} is named "
                    f"{raw!r}; give it an alias that is a Python name",
                )
                ok = False
            elif name in seen:
                self._error(
                    query.line,
                    f"{query.name}: two result columns are named {name}; "
                    "give them distinct aliases",
                )
                ok = False
            seen.add(name)
            name = python_name(name)
            type_ = self._resolver.resolve(described.ftype(index))
            if name in json_types:
                expression, line = json_types.pop(name)
                if type_.kind != "json":
                    self._error(
                        line,
                        f"{query.name}: @json names {name}, which is {type_.pg}, not json or jsonb",
                    )
                    ok = False
                type_ = TypeRef(type_.pg, expression, "json", expression)
            if type_.py == "None":
                nullable = False
            columns.append(Column(name, type_, nullable, reason))
        for name, (_, line) in json_types.items():
            self._error(line, f"{query.name}: @json names {name}, which is not a column")
            ok = False
        return tuple(columns) if ok else None

    def _json_types(self, query: ParsedQuery) -> dict[str, tuple[str, int]]:
        """The @json directives: column -> (type expression, line)."""
        types: dict[str, tuple[str, int]] = {}
        for directive in query.directives:
            if directive.name != "json":
                continue
            column, _, expression = directive.argument.partition(":")
            expression = expression.strip()
            try:
                tree = ast.parse(expression, mode="eval")
            except SyntaxError:
                self._error(
                    directive.line,
                    f"{query.name}: @json wants `column: type`, got {directive.argument!r}",
                )
                continue
            unknown = sorted(
                {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
                - _JSON_TYPE_NAMES
                - self._model_names
            )
            if unknown:
                self._error(
                    directive.line,
                    f"{query.name}: @json type uses unknown names "
                    f"{', '.join(unknown)} (models, enums and builtins only)",
                )
                continue
            types[column.strip()] = (ast.unparse(tree), directive.line)
        return types

    def _row_type(
        self, query: ParsedQuery, described: pq.abc.PGresult, columns: tuple[Column, ...]
    ) -> tuple[str, bool]:
        """The table's model when the result is exactly its columns in order, else <Query>Row."""
        tables = {described.ftable(i) for i in range(described.nfields)}
        if len(tables) == 1:
            oid = tables.pop()
            model = self._schema.relations.get(oid)
            not_null = self._schema.not_null.get(oid, ())
            if (
                model is not None
                and self._schema.kinds[oid] in ("r", "p")
                and len(model.fields) == len(columns)
                and all(described.ftablecol(i) == i + 1 for i in range(len(columns)))
                and all(
                    column.name == field.name
                    and column.nullable != nn
                    # The server describes a domain-typed column by its base type.
                    and (column.type.py, column.type.kind) == (field.type.py, field.type.kind)
                    for column, field, nn in zip(columns, model.fields, not_null, strict=True)
                )
            ):
                return model.name, True
        return class_name(query.name) + "Row", False

    def _copy(self, query: ParsedQuery, stmt: pg_ast.CopyStmt) -> Query | None:
        if not stmt.is_from or stmt.filename is not None or stmt.query is not None:
            self._error(
                query.sql_line,
                f"{query.name}: only `COPY <table> (<columns>) FROM "
                "STDIN` can be generated (rows in, count out)",
            )
            return None
        if query.operation != "!" or query.params:
            self._error(
                query.line,
                f"{query.name}: a COPY query takes no parameters and uses "
                f"the ! operation: `-- name: {query.name}()!`",
            )
            return None
        relation = stmt.relation
        assert relation is not None, "COPY FROM without a query always names a table"
        schema_name = relation.schemaname or "public"
        model = next(
            (
                m
                for oid, m in self._schema.relations.items()
                if m.schema == schema_name
                and m.table == relation.relname
                and self._schema.kinds[oid] in ("r", "p")
            ),
            None,
        )
        if model is None:
            self._error(query.sql_line, f"{query.name}: no table {schema_name}.{relation.relname}")
            return None
        by_name = {f.pg_name or f.name: f for f in model.fields}
        names = [s.sval for s in stmt.attlist] if stmt.attlist else list(by_name)
        missing = [n for n in names if n not in by_name]
        if missing:
            self._error(
                query.sql_line, f"{query.name}: {model.table} has no column " + ", ".join(missing)
            )
            return None
        copy = CopySpec(schema_name, model.table, tuple(by_name[n] for n in names))
        return Query(
            query.name,
            "!",
            query.line,
            query.doc,
            query.sql,
            (),
            (),
            class_name(query.name) + "Record",
            False,
            False,
            copy,
        )


def analyze_database(
    conn: psycopg.Connection[tuple[object, ...]],
    files: list[ParsedFile],
    package: str,
    *,
    migrations: str = "migrations",
) -> tuple[Package, list[SourceError]]:
    """Build the IR from parsed files on a connection to a migrated database."""
    schema, resolver = load_schema(conn)
    modules: list[Module] = []
    errors: list[SourceError] = []
    for parsed in files:
        analyzer = _QueryAnalyzer(conn, schema, resolver, parsed.source)
        queries = [q for q in map(analyzer.analyze, parsed.queries) if q is not None]
        errors += analyzer.errors
        modules.append(Module(parsed.stem, parsed.source, tuple(queries)))
    return Package(package, migrations, schema.models, schema.enums, tuple(modules)), errors


def analyze(
    dsn: str, migrations: Path, files: list[ParsedFile], package: str, *, display: str
) -> tuple[Package, list[SourceError]]:
    """Apply the migrations to the (throwaway) database at ``dsn``, then analyse every query."""
    if migrations.is_dir() and any(migrations.iterdir()):
        try:
            apply_migrations(dsn, migrations)
        except Exception as exc:  # yoyo raises whatever the driver raised
            return Package(package, display, (), (), ()), [
                SourceError(display, 0, f"applying the migrations failed: {exc}".strip())
            ]
    with psycopg.connect(dsn, autocommit=True) as conn:
        return analyze_database(conn, files, package, migrations=display)
