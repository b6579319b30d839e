"""Sound nullability of a statement's output columns, inferred from its syntax and the catalog.

Pure: no database, no I/O. pglast parses the statement; the walk below follows every output
column to its source (table column, outer join side, CTE, subquery, expression) and answers
nullable whenever it cannot prove otherwise. Every answer carries a reason for `--explain`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import msgspec
from pglast import ast, parse_sql
from pglast.enums import (
    A_Expr_Kind,
    BoolExprType,
    GroupingSetKind,
    JoinType,
    MergeMatchKind,
    MinMaxOp,
    NullTestType,
    ReturningOptionKind,
    SetOperation,
    SQLValueFunctionOp,
    SubLinkType,
)
from pglast.parser import ParseError

from codegen import _builtins as pg_builtins
from codegen._catalog import Catalog, CatalogColumn, CatalogTable

__all__ = [
    "Catalog",
    "CatalogColumn",
    "CatalogTable",
    "Nullability",
    "NullabilityParseError",
    "infer_nullability",
]


class Nullability(msgspec.Struct, frozen=True):
    """Whether an output column may be NULL, and the human reason shown by `--explain`."""

    nullable: bool
    reason: str


class NullabilityParseError(ValueError):
    """The statement's output columns cannot be known from its text; `reason` says why.

    The caller knows the column count from the server's description and marks every column
    nullable with `reason`.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def infer_nullability(
    sql: str, catalog: Catalog, *, nullable_params: frozenset[int] = frozenset()
) -> list[Nullability]:
    """One entry per output column (SELECT list, or RETURNING list) of the statement, in order.

    `nullable_params` holds the numbers of the `$n` parameters declared nullable; every other
    parameter is non-null. Raises NullabilityParseError when the statement does not parse or
    its output columns cannot be determined (a `*` over a relation of unknown shape).
    """
    try:
        raw_statements = parse_sql(sql)
    except ParseError as exc:
        raise NullabilityParseError(f"nullable: cannot parse the statement ({exc})") from exc
    if len(raw_statements) != 1:
        count = len(raw_statements)
        raise NullabilityParseError(f"nullable: expected one statement, found {count}")
    statement = raw_statements[0].stmt
    if isinstance(statement, _ROW_RETURNING_UTILITIES):
        name = type(statement).__name__
        raise NullabilityParseError(f"nullable: cannot analyse {name} statement")
    if not isinstance(statement, _DML):
        return []
    scope = _Scope(context=_Context(catalog, nullable_params))
    try:
        columns = _statement_columns(statement, scope)
    except RecursionError as exc:
        raise NullabilityParseError("nullable: statement too deeply nested to analyse") from exc
    if columns is None:
        raise NullabilityParseError("nullable: cannot determine the output columns")
    return [column.nullability for column in columns]


_DML = (ast.SelectStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
_ROW_RETURNING_UTILITIES = (
    ast.ExplainStmt,
    ast.VariableShowStmt,
    ast.FetchStmt,
    ast.CallStmt,
    ast.ExecuteStmt,
)

_NON_NULL_LITERAL = Nullability(False, "non-null: literal")
_ROW_PRESENT = Nullability(False, "non-null: row reference")


def _non_null(reason: str) -> Nullability:
    return Nullability(False, f"non-null: {reason}")


def _nullable(reason: str) -> Nullability:
    return Nullability(True, f"nullable: {reason}")


def _detail(nullability: Nullability) -> str:
    """The reason without its `nullable: ` / `non-null: ` prefix, for nesting in another."""
    return nullability.reason.partition(": ")[2]


def _cannot_analyse(node: object) -> Nullability:
    return _nullable(f"cannot analyse {type(node).__name__}")


def _all_operands(parts: Sequence[Nullability], what: str) -> Nullability:
    """Non-null when every operand is: the rule for strict operators and functions."""
    for part in parts:
        if part.nullable:
            return _nullable(f"{what} of a nullable operand ({_detail(part)})")
    return _non_null(f"{what} of non-null operands")


def _any_operand(parts: Sequence[Nullability], what: str) -> Nullability:
    """Non-null when some operand is (COALESCE, GREATEST, LEAST skip NULLs)."""
    for part in parts:
        if not part.nullable:
            return _non_null(f"{what} with a non-null argument ({_detail(part)})")
    return _nullable(f"{what} with no non-null argument")


# --- scopes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    nullability: Nullability


@dataclass(frozen=True, slots=True)
class _Relation:
    """A range-table entry: a table, CTE, subquery, function or join alias in FROM."""

    name: str | None  # None: the unnamed entry holding the columns merged by JOIN ... USING
    columns: tuple[_Column, ...] | None  # None: shape unknown, every lookup is nullable
    unknown_reason: str = "nullable: cannot analyse relation"
    schema: str | None = None  # set for catalog tables referenced without an alias
    row: Nullability = _ROW_PRESENT
    hidden: frozenset[str] = frozenset()  # merged by USING: unqualified names go elsewhere

    def column(self, name: str) -> Nullability | None:
        if self.columns is None:
            return Nullability(True, self.unknown_reason)
        for column in self.columns:
            if column.name == name:
                return column.nullability
        return None

    def has_column(self, name: str) -> bool:
        return self.columns is not None and any(c.name == name for c in self.columns)


@dataclass(frozen=True, slots=True)
class _Context:
    catalog: Catalog
    nullable_params: frozenset[int]


@dataclass(frozen=True, slots=True)
class _Scope:
    """One query level: its FROM entries and CTEs; `parent` is the enclosing query level."""

    context: _Context
    relations: tuple[_Relation, ...] = ()
    ctes: Mapping[str, tuple[_Column, ...] | None] = field(default_factory=dict)
    parent: _Scope | None = None

    def child(self) -> _Scope:
        return _Scope(context=self.context, parent=self)

    def cte(self, name: str) -> tuple[bool, tuple[_Column, ...] | None]:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.ctes:
                return True, scope.ctes[name]
            scope = scope.parent
        return False, None


# --- statements ---------------------------------------------------------------------------


def _statement_columns(statement: ast.Node, scope: _Scope) -> tuple[_Column, ...] | None:
    """Output columns of a SELECT, or the RETURNING list of INSERT/UPDATE/DELETE/MERGE."""
    if isinstance(statement, ast.SelectStmt):
        return _select_columns(statement, scope)
    if isinstance(statement, (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)):
        return _returning_columns(statement, scope)
    return None


def _with_scope(with_clause: ast.WithClause | None, scope: _Scope) -> _Scope:
    """`scope` extended by the CTEs of a WITH clause, each seeing the ones before it."""
    if with_clause is None:
        return scope
    ctes: dict[str, tuple[_Column, ...] | None] = dict(scope.ctes)
    for cte in with_clause.ctes or ():
        if not isinstance(cte, ast.CommonTableExpr) or cte.ctename is None:
            continue
        visible = replace(scope, ctes=dict(ctes))
        query = cte.ctequery
        if with_clause.recursive and _is_union(query):
            columns = _recursive_cte_columns(cte, visible)
        elif query is None:
            columns = None
        else:
            columns = _rename(_statement_columns(query, visible.child()), cte.aliascolnames)
        ctes[cte.ctename] = _with_search_and_cycle_columns(columns, cte)
    return replace(scope, ctes=ctes)


def _with_search_and_cycle_columns(
    columns: tuple[_Column, ...] | None, cte: ast.CommonTableExpr
) -> tuple[_Column, ...] | None:
    """SEARCH adds a sequence column, CYCLE a mark and a path column: all never NULL."""
    if columns is None:
        return None
    added: list[str | None] = []
    if cte.search_clause is not None:
        added.append(cte.search_clause.search_seq_column)
    if cte.cycle_clause is not None:
        added += [cte.cycle_clause.cycle_mark_column, cte.cycle_clause.cycle_path_column]
    why = _non_null("column added by SEARCH/CYCLE")
    return columns + tuple(_Column(name, why) for name in added if name)


def _is_union(query: ast.Node | None) -> bool:
    return isinstance(query, ast.SelectStmt) and query.op == SetOperation.SETOP_UNION


def _recursive_cte_columns(cte: ast.CommonTableExpr, scope: _Scope) -> tuple[_Column, ...] | None:
    """Widen the non-recursive term's nullability by the recursive term's until stable.

    Sound by induction: rows of iteration 0 satisfy the base answer, and the recursive term,
    fed rows satisfying the current answer, yields rows satisfying the widened one.
    """
    query = cte.ctequery
    if not isinstance(query, ast.SelectStmt) or cte.ctename is None:
        return None
    if query.larg is None or query.rarg is None:
        return None
    scope = _with_scope(query.withClause, scope)
    columns = _rename(_select_columns(query.larg, scope.child()), cte.aliascolnames)
    if columns is None:
        return None
    for _ in range(len(columns) + 1):
        with_self = replace(scope, ctes={**scope.ctes, cte.ctename: columns})
        recursive = _select_columns(query.rarg, with_self.child())
        if recursive is None or len(recursive) != len(columns):
            return None
        widened = tuple(
            _Column(
                base.name,
                _nullable(f"recursive term of CTE {cte.ctename} ({_detail(step.nullability)})")
                if step.nullability.nullable and not base.nullability.nullable
                else base.nullability,
            )
            for base, step in zip(columns, recursive, strict=True)
        )
        if widened == columns:
            return columns
        columns = widened
    return tuple(_Column(c.name, _nullable("recursive CTE did not settle")) for c in columns)


def _rename(
    columns: tuple[_Column, ...] | None, names: tuple[object, ...] | None
) -> tuple[_Column, ...] | None:
    """Apply a column alias list `AS x(a, b)` to the first columns."""
    if columns is None or not names:
        return columns
    new_names = [n.sval for n in names if isinstance(n, ast.String) and n.sval is not None]
    return tuple(
        _Column(new_names[i], c.nullability) if i < len(new_names) else c
        for i, c in enumerate(columns)
    )


def _select_columns(select: ast.SelectStmt, outer: _Scope) -> tuple[_Column, ...] | None:
    scope = _with_scope(select.withClause, outer)
    if select.op is not None and select.op != SetOperation.SETOP_NONE:
        return _set_operation_columns(select, scope)
    if select.valuesLists:
        return _values_columns(select.valuesLists, scope)
    scope = replace(scope, relations=_from_list(select.fromClause or (), scope))
    scope = _refine_by_where(select.whereClause, scope)
    return _target_columns(
        select.targetList or (), scope, grouping_sets=_has_grouping_sets(select.groupClause)
    )


def _set_operation_columns(select: ast.SelectStmt, scope: _Scope) -> tuple[_Column, ...] | None:
    if select.larg is None or select.rarg is None:
        return None
    left = _select_columns(select.larg, scope)
    if select.op != SetOperation.SETOP_UNION:
        # INTERSECT and EXCEPT return rows of the left branch.
        return left
    right = _select_columns(select.rarg, scope)
    if left is None or right is None or len(left) != len(right):
        return None
    return tuple(
        _Column(l_col.name, _nullable(f"a UNION branch may be NULL ({_detail(r_col.nullability)})"))
        if r_col.nullability.nullable and not l_col.nullability.nullable
        else l_col
        for l_col, r_col in zip(left, right, strict=True)
    )


def _values_columns(rows: tuple[object, ...], scope: _Scope) -> tuple[_Column, ...] | None:
    per_row = [
        tuple(_expr(value, scope) for value in row) for row in rows if isinstance(row, tuple)
    ]
    if not per_row or any(len(row) != len(per_row[0]) for row in per_row):
        return None
    return tuple(
        _Column(f"column{i + 1}", _all_rows(tuple(row[i] for row in per_row)))
        for i in range(len(per_row[0]))
    )


def _all_rows(values: tuple[Nullability, ...]) -> Nullability:
    for value in values:
        if value.nullable:
            return _nullable(f"a VALUES row holds a nullable value ({_detail(value)})")
    return _non_null("every VALUES row holds a non-null value")


def _has_grouping_sets(group_clause: tuple[object, ...] | None) -> bool:
    return any(
        isinstance(item, ast.GroupingSet)
        and item.kind
        in (
            GroupingSetKind.GROUPING_SET_ROLLUP,
            GroupingSetKind.GROUPING_SET_CUBE,
            GroupingSetKind.GROUPING_SET_SETS,
        )
        for item in group_clause or ()
    )


def _returning_columns(
    statement: ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt | ast.MergeStmt, outer: _Scope
) -> tuple[_Column, ...] | None:
    if statement.returningClause is None:
        return ()
    scope = _with_scope(statement.withClause, outer)
    if statement.relation is None:
        return None
    target = _range_var(statement.relation, scope)
    relations: tuple[_Relation, ...] = (target,)
    absent_old = _nullable("RETURNING old: no old row for an inserted row")
    absent_new = _nullable("RETURNING new: no new row for a deleted row")
    old, new = target, target
    if isinstance(statement, ast.UpdateStmt):
        relations += _from_list(statement.fromClause or (), replace(scope, relations=relations))
    elif isinstance(statement, ast.DeleteStmt):
        relations += _from_list(statement.usingClause or (), replace(scope, relations=relations))
        new = _nullable_relation(target, absent_new)
    elif isinstance(statement, ast.InsertStmt):
        old = _nullable_relation(target, absent_old)
    else:
        relations += _merge_source(statement, scope)
        merge_absent = _nullable("MERGE may insert or delete: old or new row may be absent")
        old, new = (
            _nullable_relation(target, merge_absent),
            _nullable_relation(target, merge_absent),
        )
    old_name, new_name = "old", "new"
    for option in statement.returningClause.options or ():
        if isinstance(option, ast.ReturningOption) and option.value is not None:
            if option.option == ReturningOptionKind.RETURNING_OPTION_OLD:
                old_name = option.value
            else:
                new_name = option.value
    relations += (
        replace(old, name=old_name, schema=None, hidden=_all_names(old)),
        replace(new, name=new_name, schema=None, hidden=_all_names(new)),
    )
    scope = replace(scope, relations=relations)
    return _target_columns(statement.returningClause.exprs or (), scope, grouping_sets=False)


def _all_names(relation: _Relation) -> frozenset[str]:
    """Every column name: the old/new pseudo-relations are reachable only when qualified."""
    return frozenset(c.name for c in relation.columns or ())


def _merge_source(statement: ast.MergeStmt, scope: _Scope) -> tuple[_Relation, ...]:
    if statement.sourceRelation is None:
        return ()
    source = _from_item(statement.sourceRelation, scope, ())
    if any(
        isinstance(clause, ast.MergeWhenClause)
        and clause.matchKind == MergeMatchKind.MERGE_WHEN_NOT_MATCHED_BY_SOURCE
        for clause in statement.mergeWhenClauses or ()
    ):
        why = _nullable("MERGE source row is absent for WHEN NOT MATCHED BY SOURCE")
        return tuple(_nullable_relation(r, why) for r in source)
    return source


# --- FROM ---------------------------------------------------------------------------------


def _from_list(items: tuple[object, ...], scope: _Scope) -> tuple[_Relation, ...]:
    """Entries of a FROM list; each item sees the ones before it (for LATERAL and functions)."""
    relations: tuple[_Relation, ...] = ()
    for item in items:
        relations += _from_item(item, scope, scope.relations + relations)
    return relations


def _from_item(item: object, scope: _Scope, before: tuple[_Relation, ...]) -> tuple[_Relation, ...]:
    if isinstance(item, ast.RangeVar):
        return (_range_var(item, scope),)
    if isinstance(item, ast.JoinExpr):
        return _join(item, scope, before)
    if isinstance(item, ast.RangeSubselect):
        visible = replace(scope, relations=before if item.lateral else ())
        name = item.alias.aliasname if item.alias is not None else None
        columns = None
        if item.subquery is not None:
            columns = _statement_columns(item.subquery, visible.child())
        colnames = item.alias.colnames if item.alias is not None else None
        return (_Relation(name, _rename(columns, colnames), "nullable: cannot analyse subquery"),)
    if isinstance(item, ast.RangeFunction):
        return (_range_function(item, replace(scope, relations=before)),)
    if isinstance(item, ast.RangeTableSample) and isinstance(item.relation, ast.RangeVar):
        return (_range_var(item.relation, scope),)
    alias = getattr(item, "alias", None)
    name = alias.aliasname if isinstance(alias, ast.Alias) else None
    return (_Relation(name, None, _cannot_analyse(item).reason),)


def _range_var(range_var: ast.RangeVar, scope: _Scope) -> _Relation:
    relname = range_var.relname or ""
    alias = range_var.alias
    name = alias.aliasname if alias is not None and alias.aliasname else relname
    colnames = alias.colnames if alias is not None else None
    if range_var.schemaname is None:
        found, cte_columns = scope.cte(relname)
        if found:
            reason = f"nullable: cannot analyse CTE {relname}"
            return _Relation(name, _rename(cte_columns, colnames), reason)
    table = scope.context.catalog.find(range_var.schemaname, relname)
    if table is None:
        return _Relation(name, None, f"nullable: table {relname} is not in the catalog")
    columns = tuple(
        _Column(
            c.name,
            _non_null(f"{table.name}.{c.name} is NOT NULL")
            if c.not_null
            else _nullable(f"{table.name}.{c.name} allows NULL"),
        )
        for c in table.columns
    )
    schema = table.schema if alias is None else None
    return _Relation(name, _rename(columns, colnames), schema=schema)


def _nullable_relation(relation: _Relation, why: Nullability) -> _Relation:
    """The relation as seen from the NULL-extended side of an outer join."""
    columns = None
    if relation.columns is not None:
        columns = tuple(
            c if c.nullability.nullable else _Column(c.name, why) for c in relation.columns
        )
    return replace(relation, columns=columns, row=why)


def _join(
    join: ast.JoinExpr, scope: _Scope, before: tuple[_Relation, ...]
) -> tuple[_Relation, ...]:
    if join.larg is None or join.rarg is None:
        return (_Relation(None, None, _cannot_analyse(join).reason),)
    left = _from_item(join.larg, scope, before)
    right = _from_item(join.rarg, scope, before + left)
    kind = join.jointype
    using = _using_names(join, left, right)
    merged = _merge_using(using, left, right, kind)
    if kind in (JoinType.JOIN_LEFT, JoinType.JOIN_FULL):
        side = "right side of LEFT JOIN" if kind == JoinType.JOIN_LEFT else "side of FULL JOIN"
        right = tuple(_nullable_relation(r, _nullable(f"{side} {_label(r)}")) for r in right)
    if kind in (JoinType.JOIN_RIGHT, JoinType.JOIN_FULL):
        side = "left side of RIGHT JOIN" if kind == JoinType.JOIN_RIGHT else "side of FULL JOIN"
        left = tuple(_nullable_relation(r, _nullable(f"{side} {_label(r)}")) for r in left)
    hidden = frozenset(c.name for c in merged.columns or ())
    relations = tuple(replace(r, hidden=r.hidden | hidden) for r in left + right)
    if using is not None and join.join_using_alias is not None:
        merged = replace(merged, name=join.join_using_alias.aliasname)
    if using is not None:
        relations = (merged, *relations)
    if join.alias is None:
        return relations
    return (_join_alias(join.alias, relations),)


def _label(relation: _Relation) -> str:
    return relation.name or "(join)"


def _using_names(
    join: ast.JoinExpr, left: tuple[_Relation, ...], right: tuple[_Relation, ...]
) -> tuple[str, ...] | None:
    """The merged column names of USING or NATURAL; None for ON (or a cross join)."""
    if join.isNatural:
        left_names = _visible_names(left)
        right_names = _visible_names(right)
        if left_names is None or right_names is None:
            return ()
        return tuple(n for n in left_names if n in right_names)
    if join.usingClause:
        return tuple(n.sval for n in join.usingClause if isinstance(n, ast.String) and n.sval)
    return None


def _visible_names(relations: tuple[_Relation, ...]) -> list[str] | None:
    names: list[str] = []
    for relation in relations:
        if relation.columns is None:
            return None
        names.extend(c.name for c in relation.columns if c.name not in relation.hidden)
    return names


def _merge_using(
    using: tuple[str, ...] | None,
    left: tuple[_Relation, ...],
    right: tuple[_Relation, ...],
    kind: JoinType | None,
) -> _Relation:
    """The unnamed entry for USING columns: COALESCE(left.c, right.c) with the join's rules."""
    columns: list[_Column] = []
    for name in using or ():
        in_left = _lookup_unqualified(name, left)
        in_right = _lookup_unqualified(name, right)
        if in_left is None or in_right is None:
            columns.append(_Column(name, _nullable(f"cannot resolve USING column {name}")))
        elif kind == JoinType.JOIN_LEFT:
            columns.append(_Column(name, in_left))
        elif kind == JoinType.JOIN_RIGHT:
            columns.append(_Column(name, in_right))
        elif kind == JoinType.JOIN_FULL:
            both = _all_operands((in_left, in_right), f"FULL JOIN USING column {name}")
            columns.append(_Column(name, both))
        else:
            columns.append(_Column(name, _any_operand((in_left, in_right), f"USING {name}")))
    return _Relation(None, tuple(columns))


def _join_alias(alias: ast.Alias, relations: tuple[_Relation, ...]) -> _Relation:
    """`(a JOIN b ...) AS j(x, y)`: one entry exposing the join's columns under a new name."""
    columns: list[_Column] = []
    for relation in relations:
        if relation.columns is None:
            return _Relation(alias.aliasname, None, relation.unknown_reason)
        columns.extend(c for c in relation.columns if c.name not in relation.hidden)
    return _Relation(alias.aliasname, _rename(tuple(columns), alias.colnames))


def _range_function(item: ast.RangeFunction, scope: _Scope) -> _Relation:
    alias = item.alias
    functions = item.functions or ()
    call = functions[0][0] if len(functions) == 1 and isinstance(functions[0], tuple) else None
    name = _function_name(call) if isinstance(call, ast.FuncCall) else None
    relation_name = alias.aliasname if alias is not None else name
    if not isinstance(call, ast.FuncCall) or name is None or functions[0][1]:
        reason = "nullable: cannot analyse ROWS FROM or a record-returning function"
        return _Relation(relation_name, None, reason)
    columns = _function_columns(call, name, scope)
    if columns is None:
        reason = f"nullable: cannot analyse function {name}() in FROM"
        return _Relation(relation_name, None, reason)
    # A scalar function's column takes the alias, unless it has a named OUT parameter.
    if len(columns) == 1 and alias is not None and alias.aliasname and columns[0].name == name:
        columns = (_Column(alias.aliasname, columns[0].nullability),)
    if item.ordinality:
        columns += (_Column("ordinality", _non_null("WITH ORDINALITY")),)
    colnames = alias.colnames if alias is not None else None
    return _Relation(relation_name, _rename(columns, colnames))


def _function_columns(call: ast.FuncCall, name: str, scope: _Scope) -> tuple[_Column, ...] | None:
    arguments = tuple(_expr(a, scope) for a in call.args or ())
    if name in ("generate_series", "generate_subscripts", "regexp_split_to_table"):
        return (_Column(name, _all_operands(arguments, f"{name}()")),)
    if name == "unnest":
        why = _nullable("unnest() yields NULL for NULL array elements")
        return tuple(_Column("unnest", why) for _ in arguments)
    if name in ("jsonb_each", "json_each"):
        return (_Column("key", _non_null("JSON object keys")), _Column("value", _non_null("JSON")))
    if name in ("jsonb_each_text", "json_each_text"):
        why = _nullable(f"{name}() yields NULL for JSON null values")
        return (_Column("key", _non_null("JSON object keys")), _Column("value", why))
    if name in ("jsonb_array_elements", "json_array_elements"):
        return (_Column("value", _non_null(f"{name}() yields JSON values, never SQL NULL")),)
    if name in ("jsonb_array_elements_text", "json_array_elements_text"):
        return (_Column("value", _nullable(f"{name}() yields NULL for JSON null elements")),)
    if name in ("jsonb_object_keys", "json_object_keys"):
        return (_Column(name, _non_null(f"{name}() yields non-null keys")),)
    if (
        name in pg_builtins.STRICT_NON_NULL_FUNCTIONS
        or name in pg_builtins.ALWAYS_NON_NULL_FUNCTIONS
    ):
        return (_Column(name, _function_call(call, scope)),)
    return None


# --- column references --------------------------------------------------------------------


def _lookup_unqualified(name: str, relations: tuple[_Relation, ...]) -> Nullability | None:
    found = [r for r in relations if name not in r.hidden and r.has_column(name)]
    if len(found) == 1:
        return found[0].column(name)
    if len(found) > 1:
        return _nullable(f"column {name} is ambiguous")
    unknown = [r for r in relations if r.columns is None]
    if unknown:
        return Nullability(True, unknown[0].unknown_reason)
    return None


def _find_relation(
    qualifier: tuple[str, ...], relations: tuple[_Relation, ...]
) -> _Relation | None:
    """The entry named `rel` or `schema.rel` (the newest one, as PostgreSQL would pick)."""
    *schema, name = qualifier
    for relation in reversed(relations):
        if relation.name != name:
            continue
        if schema and schema[-1] != relation.schema:
            continue
        return relation
    return None


def _column_ref(ref: ast.ColumnRef, scope: _Scope) -> Nullability:
    fields = ref.fields or ()
    names = tuple(f.sval for f in fields if isinstance(f, ast.String) and f.sval is not None)
    if len(names) != len(fields) or not names:
        return _cannot_analyse(ref)
    level: _Scope | None = scope
    *qualifier, column = names
    while level is not None:
        if not qualifier:
            found = _lookup_unqualified(column, level.relations)
            if found is not None:
                return found
        else:
            relation = _find_relation(tuple(qualifier), level.relations)
            if relation is not None:
                value = relation.column(column)
                if value is not None:
                    return value
                return _nullable(f"cannot resolve column {'.'.join(names)}")
        level = level.parent
    if not qualifier:
        # A bare relation name is a whole-row reference, NULL on the outer side of a join.
        level = scope
        while level is not None:
            relation = _find_relation((column,), level.relations)
            if relation is not None:
                return relation.row
            level = level.parent
    return _nullable(f"cannot resolve column {'.'.join(names)}")


def _refine_by_where(where: ast.Node | None, scope: _Scope) -> _Scope:
    """`WHERE t.c IS NOT NULL` (a top-level conjunct) makes t.c non-null in this query."""
    proven: list[tuple[tuple[str, ...], str]] = []
    for conjunct in _conjuncts(where):
        if (
            isinstance(conjunct, ast.NullTest)
            and conjunct.nulltesttype == NullTestType.IS_NOT_NULL
            and isinstance(conjunct.arg, ast.ColumnRef)
        ):
            fields = conjunct.arg.fields or ()
            names = tuple(f.sval for f in fields if isinstance(f, ast.String) and f.sval)
            if len(names) == len(fields) and names:
                proven.append((tuple(names[:-1]), names[-1]))
    relations = scope.relations
    for qualifier, column in proven:
        relations = _prove_non_null(relations, qualifier, column)
    return replace(scope, relations=relations)


def _conjuncts(node: ast.Node | None) -> Iterator[ast.Node]:
    if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.AND_EXPR:
        for arg in node.args or ():
            if isinstance(arg, ast.Node):
                yield from _conjuncts(arg)
    elif node is not None:
        yield node


def _prove_non_null(
    relations: tuple[_Relation, ...], qualifier: tuple[str, ...], column: str
) -> tuple[_Relation, ...]:
    if qualifier:
        target = _find_relation(qualifier, relations)
    else:
        found = [r for r in relations if column not in r.hidden and r.has_column(column)]
        target = found[0] if len(found) == 1 else None
    if target is None or target.columns is None:
        return relations
    label = ".".join((*qualifier, column))
    why = _non_null(f"WHERE {label} IS NOT NULL")
    columns = tuple(_Column(c.name, why) if c.name == column else c for c in target.columns)
    refined = replace(target, columns=columns)
    return tuple(refined if r is target else r for r in relations)


# --- target lists -------------------------------------------------------------------------


def _target_columns(
    targets: tuple[object, ...], scope: _Scope, *, grouping_sets: bool
) -> tuple[_Column, ...] | None:
    columns: list[_Column] = []
    for target in targets:
        if not isinstance(target, ast.ResTarget) or target.val is None:
            return None
        value = target.val
        if isinstance(value, ast.ColumnRef) and isinstance(
            (value.fields or (None,))[-1], ast.A_Star
        ):
            expanded = _expand_star(value, scope)
            if expanded is None:
                return None
            columns.extend(expanded)
            continue
        name = target.name or _default_name(value)
        if grouping_sets and not _is_aggregate_result(value):
            nullability = _nullable(
                "ROLLUP/CUBE/GROUPING SETS may replace grouped values with NULL"
            )
        else:
            nullability = _expr(value, scope)
        columns.append(_Column(name, _apply_marker(target.name, nullability)))
    return tuple(columns)


def _apply_marker(name: str | None, inferred: Nullability) -> Nullability:
    if name is not None and len(name) > 1 and name.endswith("!"):
        return Nullability(False, "non-null: forced by the ! marker")
    if name is not None and len(name) > 1 and name.endswith("?"):
        return Nullability(True, "nullable: forced by the ? marker")
    return inferred


def _expand_star(ref: ast.ColumnRef, scope: _Scope) -> list[_Column] | None:
    fields = ref.fields or ()
    qualifier = tuple(f.sval for f in fields[:-1] if isinstance(f, ast.String) and f.sval)
    if qualifier:
        relation = _find_relation(qualifier, scope.relations)
        if relation is None or relation.columns is None:
            return None
        return list(relation.columns)
    columns: list[_Column] = []
    for relation in scope.relations:
        if relation.columns is None:
            return None
        columns.extend(c for c in relation.columns if c.name not in relation.hidden)
    return columns


def _default_name(node: ast.Node) -> str:
    """The column name PostgreSQL gives an unaliased expression (FigureColname, simplified)."""
    if isinstance(node, ast.ColumnRef):
        last = (node.fields or (None,))[-1]
        return last.sval if isinstance(last, ast.String) and last.sval else "?column?"
    if isinstance(node, ast.FuncCall):
        return _function_name(node) or "?column?"
    if isinstance(node, ast.TypeCast) and node.arg is not None:
        inner = _default_name(node.arg)
        if inner != "?column?" or node.typeName is None:
            return inner
        last = (node.typeName.names or (None,))[-1]
        return last.sval if isinstance(last, ast.String) and last.sval else inner
    if isinstance(node, ast.CoalesceExpr):
        return "coalesce"
    if isinstance(node, ast.MinMaxExpr):
        return "greatest" if node.op == MinMaxOp.IS_GREATEST else "least"
    if isinstance(node, ast.CaseExpr):
        return "case"
    if isinstance(node, ast.A_Indirection):
        last = (node.indirection or (None,))[-1]
        if isinstance(last, ast.String) and last.sval:
            return last.sval
        return _default_name(node.arg) if node.arg is not None else "?column?"
    if isinstance(node, ast.SubLink):
        return _sublink_name(node)
    if isinstance(node, ast.SQLValueFunction) and node.op is not None:
        return node.op.name.removeprefix("SVFOP_").removesuffix("_N").lower()
    if isinstance(node, ast.A_Expr) and node.kind == A_Expr_Kind.AEXPR_NULLIF:
        return "nullif"
    names = {ast.A_ArrayExpr: "array", ast.RowExpr: "row", ast.GroupingFunc: "grouping"}
    return names.get(type(node), "?column?")


def _sublink_name(node: ast.SubLink) -> str:
    if node.subLinkType == SubLinkType.EXISTS_SUBLINK:
        return "exists"
    if node.subLinkType == SubLinkType.ARRAY_SUBLINK:
        return "array"
    subquery = node.subselect
    if node.subLinkType == SubLinkType.EXPR_SUBLINK and isinstance(subquery, ast.SelectStmt):
        while subquery.larg is not None:
            subquery = subquery.larg
        first = (subquery.targetList or (None,))[0]
        if isinstance(first, ast.ResTarget) and first.val is not None:
            return first.name or _default_name(first.val)
    return "?column?"


# --- expressions --------------------------------------------------------------------------


def _expr(node: object, scope: _Scope) -> Nullability:
    """Nullability of a value expression evaluated in `scope`."""
    if isinstance(node, ast.A_Const):
        return _nullable("NULL literal") if node.isnull else _NON_NULL_LITERAL
    if isinstance(node, ast.ParamRef):
        number = node.number or 0
        if number in scope.context.nullable_params:
            return _nullable(f"parameter ${number} is declared nullable")
        return _non_null(f"parameter ${number}")
    if isinstance(node, ast.ColumnRef):
        return _column_ref(node, scope)
    if isinstance(node, (ast.TypeCast, ast.CollateClause)):
        return _expr(node.arg, scope)
    if isinstance(node, ast.A_Expr):
        return _a_expr(node, scope)
    if isinstance(node, ast.BoolExpr):
        kind = node.boolop.name if node.boolop is not None else "BOOL"
        what = {"AND_EXPR": "AND", "OR_EXPR": "OR", "NOT_EXPR": "NOT"}.get(kind, kind)
        return _all_operands([_expr(a, scope) for a in node.args or ()], what)
    if isinstance(node, ast.NullTest):
        return _non_null("IS [NOT] NULL never returns NULL")
    if isinstance(node, ast.BooleanTest):
        return _non_null("IS [NOT] TRUE/FALSE/UNKNOWN never returns NULL")
    if isinstance(node, ast.JsonIsPredicate):
        # Unlike IS NULL, IS [NOT] JSON is NULL for a NULL operand.
        return _all_operands([_expr(node.expr, scope)], "IS [NOT] JSON")
    if isinstance(node, ast.CaseExpr):
        return _case(node, scope)
    if isinstance(node, ast.CoalesceExpr):
        return _any_operand([_expr(a, scope) for a in node.args or ()], "COALESCE")
    if isinstance(node, ast.MinMaxExpr):
        what = "GREATEST" if node.op == MinMaxOp.IS_GREATEST else "LEAST"
        return _any_operand([_expr(a, scope) for a in node.args or ()], what)
    if isinstance(node, ast.SubLink):
        return _sublink(node, scope)
    if isinstance(node, ast.FuncCall):
        return _function_call(node, scope)
    if isinstance(node, ast.SQLValueFunction):
        if node.op == SQLValueFunctionOp.SVFOP_CURRENT_SCHEMA:
            return _nullable("current_schema is NULL when the search path is empty")
        return _non_null("SQL value function")
    if isinstance(node, ast.A_ArrayExpr):
        return _non_null("ARRAY[...] is never NULL")
    if isinstance(node, ast.RowExpr):
        return _non_null("ROW(...) is never NULL")
    if isinstance(node, ast.A_Indirection):
        return _nullable("subscript or field selection may yield NULL")
    if isinstance(node, (ast.GroupingFunc, ast.MergeSupportFunc)):
        return _non_null(f"{type(node).__name__} never returns NULL")
    if isinstance(node, (ast.JsonObjectConstructor, ast.JsonArrayConstructor)):
        return _non_null("JSON_OBJECT/JSON_ARRAY is never NULL")
    if isinstance(node, (ast.JsonArrayAgg, ast.JsonObjectAgg)):
        return _nullable("JSON aggregate returns NULL over no rows")
    return _cannot_analyse(node)


def _operator_name(names: tuple[object, ...] | None) -> str:
    last = (names or (None,))[-1]
    return last.sval if isinstance(last, ast.String) and last.sval else "?"


def _a_expr(node: ast.A_Expr, scope: _Scope) -> Nullability:
    kind = node.kind
    operator = _operator_name(node.name)
    if kind in (A_Expr_Kind.AEXPR_DISTINCT, A_Expr_Kind.AEXPR_NOT_DISTINCT):
        return _non_null("IS [NOT] DISTINCT FROM never returns NULL")
    if kind == A_Expr_Kind.AEXPR_NULLIF:
        return _nullable("NULLIF returns NULL when its arguments are equal")
    operands: list[Nullability] = []
    if node.lexpr is not None:
        operands.append(_operand(node.lexpr, scope))
    if kind in (A_Expr_Kind.AEXPR_OP_ANY, A_Expr_Kind.AEXPR_OP_ALL):
        # A NULL element of the array makes a non-matching ANY (or a matching ALL) NULL.
        array = node.rexpr
        if not isinstance(array, ast.A_ArrayExpr):
            return _nullable(f"{operator} ANY/ALL over an array that may hold NULL elements")
        operands.extend(_operand(e, scope) for e in array.elements or ())
    elif isinstance(node.rexpr, tuple):
        operands.extend(_operand(e, scope) for e in node.rexpr)
    elif node.rexpr is not None:
        operands.append(_operand(node.rexpr, scope))
    label = {
        A_Expr_Kind.AEXPR_IN: "IN",
        A_Expr_Kind.AEXPR_BETWEEN: "BETWEEN",
        A_Expr_Kind.AEXPR_NOT_BETWEEN: "NOT BETWEEN",
        A_Expr_Kind.AEXPR_BETWEEN_SYM: "BETWEEN SYMMETRIC",
        A_Expr_Kind.AEXPR_NOT_BETWEEN_SYM: "NOT BETWEEN SYMMETRIC",
    }.get(kind if kind is not None else A_Expr_Kind.AEXPR_OP, f"operator {operator}")
    if kind in (A_Expr_Kind.AEXPR_SIMILAR, A_Expr_Kind.AEXPR_LIKE, A_Expr_Kind.AEXPR_ILIKE):
        label = "LIKE/ILIKE/SIMILAR TO"
    elif label.startswith("operator") and operator not in pg_builtins.NON_NULL_OPERATORS:
        return _nullable(f"operator {operator} is not known to return non-null")
    return _all_operands(operands, label)


def _operand(node: object, scope: _Scope) -> Nullability:
    """An operand of a comparison: row constructors compare field by field, NULL if any is."""
    if isinstance(node, ast.RowExpr):
        fields = [_expr(a, scope) for a in node.args or ()]
        return _all_operands(fields, "row constructor")
    return _expr(node, scope)


def _case(node: ast.CaseExpr, scope: _Scope) -> Nullability:
    branches = [_expr(w.result, scope) for w in node.args or () if isinstance(w, ast.CaseWhen)]
    if node.defresult is None:
        return _nullable("CASE without ELSE")
    branches.append(_expr(node.defresult, scope))
    for branch in branches:
        if branch.nullable:
            return _nullable(f"a CASE branch may be NULL ({_detail(branch)})")
    return _non_null("every CASE branch is non-null")


def _function_name(call: ast.FuncCall) -> str | None:
    """The function's name, if it is a builtin (unqualified or in pg_catalog)."""
    parts = [p.sval for p in call.funcname or () if isinstance(p, ast.String) and p.sval]
    if len(parts) == 1 or (len(parts) == 2 and parts[0] == "pg_catalog"):
        return parts[-1]
    return None


def _function_call(call: ast.FuncCall, scope: _Scope) -> Nullability:
    name = _function_name(call)
    shown = ".".join(p.sval for p in call.funcname or () if isinstance(p, ast.String) and p.sval)
    if name is None:
        return _nullable(f"function {shown}() is not known to return non-null")
    if name == "count":
        return _non_null("count() never returns NULL")
    if call.over is not None:
        if name in pg_builtins.RANKING_WINDOW_FUNCTIONS:
            return _non_null(f"{name}() never returns NULL")
        if name in pg_builtins.VALUE_WINDOW_FUNCTIONS:
            return _nullable(f"{name}() returns NULL when the row is outside the window frame")
        if name == "ntile":
            return _all_operands([_expr(a, scope) for a in call.args or ()], "ntile()")
    if name in pg_builtins.AGGREGATES:
        return _nullable(f"{name}() returns NULL over no rows")
    arguments = [_expr(a, scope) for a in call.args or ()]
    if name in pg_builtins.ALWAYS_NON_NULL_FUNCTIONS:
        return _non_null(f"{name}() never returns NULL")
    if name in pg_builtins.FIRST_ARGUMENT_FUNCTIONS:
        return _all_operands(arguments[:1], f"{name}()")
    if name in pg_builtins.STRICT_NON_NULL_FUNCTIONS or _is_safe_special_form(
        name, call.args or ()
    ):
        return _all_operands(arguments, f"{name}()")
    if name in ("extract", "date_part"):
        return _nullable(f"{name}() of this field returns NULL for infinite values")
    if name == "substring":
        return _nullable("substring() with a pattern returns NULL when nothing matches")
    return _nullable(f"function {name}() is not known to return non-null")


def _is_safe_special_form(name: str, args: tuple[object, ...]) -> bool:
    """substring(s, <int>[, <int>]) (not its regex forms); extract of a field infinity keeps."""
    second = _literal(args[1]) if len(args) > 1 else None
    if name == "substring":
        return isinstance(second, int)
    first = _literal(args[0]) if args else None
    return (
        name in ("extract", "date_part") and str(first).lower() in pg_builtins.INFINITY_SAFE_FIELDS
    )


def _literal(node: object) -> object:
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.Integer):
        return node.val.ival
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.String):
        return node.val.sval
    return None


def _sublink(node: ast.SubLink, scope: _Scope) -> Nullability:
    kind = node.subLinkType
    if kind == SubLinkType.EXISTS_SUBLINK:
        return _non_null("EXISTS never returns NULL")
    if kind == SubLinkType.ARRAY_SUBLINK:
        return _non_null("ARRAY(subquery) is never NULL")
    subquery = node.subselect
    if not isinstance(subquery, ast.SelectStmt):
        return _cannot_analyse(node)
    inner = scope.child()
    columns = _select_columns(subquery, inner)
    if kind == SubLinkType.EXPR_SUBLINK:
        if not columns:
            return _nullable("scalar subquery may return no row")
        if not _returns_exactly_one_row(subquery, inner):
            return _nullable("scalar subquery may return no row")
        if columns[0].nullability.nullable:
            return columns[0].nullability
        detail = _detail(columns[0].nullability)
        return _non_null(f"scalar subquery always returns one row and {detail}")
    if kind in (SubLinkType.ANY_SUBLINK, SubLinkType.ALL_SUBLINK):
        operator = _operator_name(node.operName) if node.operName else "="
        if operator not in pg_builtins.NON_NULL_OPERATORS or columns is None:
            return _nullable(f"{operator} ANY/ALL (subquery) may return NULL")
        operands = [_operand(node.testexpr, scope), *(c.nullability for c in columns)]
        return _all_operands(operands, "IN/ANY/ALL (subquery)")
    return _cannot_analyse(node)


def _returns_exactly_one_row(select: ast.SelectStmt, outer: _Scope) -> bool:
    """A plain aggregate query without GROUP BY, or a FROM-less SELECT, yields exactly one row."""
    if (
        (select.op is not None and select.op != SetOperation.SETOP_NONE)
        or select.valuesLists
        or select.groupClause
        or select.havingClause is not None
        or select.limitCount is not None
        or select.limitOffset is not None
    ):
        return False
    targets = [t.val for t in select.targetList or () if isinstance(t, ast.ResTarget)]
    if any(_may_return_set(t) for t in targets):
        return False
    if not select.fromClause:
        return select.whereClause is None
    scope = _with_scope(select.withClause, outer)
    relations = _from_list(select.fromClause, scope)
    return any(_is_local_aggregate(n, relations) for t in targets for n in _walk(t))


def _is_aggregate_result(node: ast.Node) -> bool:
    """An aggregate call or GROUPING(): its value is never replaced by a grouping set's NULL."""
    if isinstance(node, (ast.GroupingFunc, ast.JsonArrayAgg, ast.JsonObjectAgg)):
        return True
    return isinstance(node, ast.FuncCall) and node.over is None and _is_aggregate(node)


def _is_aggregate(call: ast.FuncCall) -> bool:
    name = _function_name(call)
    return (
        name in pg_builtins.AGGREGATES
        or name == "count"
        or bool(call.agg_star or call.agg_filter or call.agg_order or call.agg_within_group)
    )


def _is_local_aggregate(node: ast.Node, relations: tuple[_Relation, ...]) -> bool:
    """An aggregate of this query level: count(*), or one whose arguments use local columns."""
    if not isinstance(node, ast.FuncCall) or node.over is not None or not _is_aggregate(node):
        return isinstance(node, (ast.JsonArrayAgg, ast.JsonObjectAgg))
    if node.agg_star:
        return True
    refs = [n for a in node.args or () for n in _walk(a) if isinstance(n, ast.ColumnRef)]
    return not refs or any(_resolves_locally(r, relations) for r in refs)


def _resolves_locally(ref: ast.ColumnRef, relations: tuple[_Relation, ...]) -> bool:
    names = tuple(f.sval for f in ref.fields or () if isinstance(f, ast.String) and f.sval)
    if len(names) > 1:
        return _find_relation(names[:-1], relations) is not None
    # A relation of unknown shape does not count: the column might belong to an outer level.
    return bool(names) and any(r.has_column(names[0]) for r in relations)


def _may_return_set(node: ast.Node | None) -> bool:
    """Whether a set-returning function could hide in the expression (unknown functions)."""
    known = (
        pg_builtins.STRICT_NON_NULL_FUNCTIONS
        | pg_builtins.ALWAYS_NON_NULL_FUNCTIONS
        | pg_builtins.FIRST_ARGUMENT_FUNCTIONS
    ) | {"substring", "extract", "date_part"}
    for child in _walk(node):
        if isinstance(child, ast.FuncCall) and child.over is None:
            name = _function_name(child)
            if not _is_aggregate(child) and (name is None or name not in known):
                return True
    return False


def _walk(node: object) -> Iterator[ast.Node]:
    """The node and its descendants at this query level (not inside subqueries)."""
    if isinstance(node, tuple):
        for item in node:
            yield from _walk(item)
        return
    if not isinstance(node, ast.Node):
        return
    yield node
    if isinstance(node, ast.SubLink):
        yield from _walk(node.testexpr)
        return
    for attribute in node:
        yield from _walk(getattr(node, attribute))
