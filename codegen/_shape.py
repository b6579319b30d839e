"""The shape of a statement, from its syntax alone: how many rows it can return, its output list.

Pure: pglast parses the statement; nothing here needs a database.
"""

from __future__ import annotations

import pglast
from pglast import ast as pg_ast
from pglast.enums import OnConflictAction

__all__ = ["always_one_row", "insert_always_returns", "parse_statement", "star_offsets"]

_AGGREGATES = frozenset(
    {"count", "sum", "avg", "min", "max", "array_agg", "json_agg", "jsonb_agg", "string_agg"}
    | {"bool_and", "bool_or", "every", "json_object_agg", "jsonb_object_agg", "bit_and", "bit_or"}
    | {"stddev", "variance"}
)


def _walk(node: object) -> list[pg_ast.Node]:
    """Every node under ``node``, not descending into subqueries."""
    found: list[pg_ast.Node] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple | list):
            stack.extend(item)
        elif isinstance(item, pg_ast.Node) and not isinstance(item, pg_ast.SubLink):
            found.append(item)
            stack.extend(getattr(item, slot) for slot in item.__slots__)  # type: ignore[attr-defined]
    return found


def _is_aggregate(node: pg_ast.Node) -> bool:
    if not isinstance(node, pg_ast.FuncCall) or node.over is not None or not node.funcname:
        return False
    name: object = getattr(node.funcname[-1], "sval", None)
    return isinstance(name, str) and name in _AGGREGATES


def always_one_row(stmt: pg_ast.Node) -> bool:
    """Whether a statement always yields exactly one row (so ``$`` never sees "no row")."""
    if isinstance(stmt, pg_ast.InsertStmt):
        return insert_always_returns(stmt)
    if not isinstance(stmt, pg_ast.SelectStmt) or stmt.op != 0 or stmt.valuesLists:
        return False
    if stmt.groupClause or stmt.havingClause or stmt.limitCount or stmt.limitOffset:
        return False
    if not stmt.fromClause:
        return stmt.whereClause is None
    return any(_is_aggregate(n) for n in _walk(stmt.targetList))


def insert_always_returns(stmt: pg_ast.Node) -> bool:
    """INSERT ... VALUES with no ON CONFLICT DO NOTHING and no conditional DO UPDATE."""
    if not isinstance(stmt, pg_ast.InsertStmt):
        return False
    select = stmt.selectStmt
    if not isinstance(select, pg_ast.SelectStmt) or not select.valuesLists:
        return False
    conflict = stmt.onConflictClause
    return conflict is None or (
        conflict.action == OnConflictAction.ONCONFLICT_UPDATE and conflict.whereClause is None
    )


def _output_targets(stmt: pg_ast.Node) -> list[pg_ast.ResTarget]:
    """The ResTargets that become result columns: SELECT lists (every set-operation arm) and
    RETURNING lists."""
    if isinstance(stmt, pg_ast.SelectStmt):
        if stmt.op:
            return [
                *(_output_targets(stmt.larg) if stmt.larg else []),
                *(_output_targets(stmt.rarg) if stmt.rarg else []),
            ]
        return list(stmt.targetList or ())
    returning = getattr(stmt, "returningClause", None)
    exprs = getattr(returning, "exprs", None) or ()
    return [t for t in exprs if isinstance(t, pg_ast.ResTarget)]


def star_offsets(stmt: pg_ast.Node) -> list[int]:
    """Byte offsets of ``*`` and ``t.*`` in the output list."""
    offsets = []
    for target in _output_targets(stmt):
        value = target.val
        if isinstance(value, pg_ast.ColumnRef) and isinstance(
            (value.fields or (None,))[-1], pg_ast.A_Star
        ):
            offsets.append(value.location if value.location is not None else 0)
    return offsets


def parse_statement(sql: str) -> pg_ast.Node | None:
    try:
        statements = pglast.parse_sql(sql)
    except pglast.parser.ParseError:
        return None
    return statements[0].stmt if len(statements) == 1 else None
