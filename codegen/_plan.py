"""Generic plans as vet and the docs read them: EXPLAIN with unknown parameters, and the tree."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import psycopg

__all__ = [
    "HEAP_SCANS",
    "INDEX_SCANS",
    "Ancestors",
    "Plan",
    "PlanFacts",
    "bounded_by_limit",
    "explain",
    "leading_scans",
    "planner_settings",
    "walk",
]

# Nodes that hand rows on in the order they get them, one input each: a LIMIT above them still
# bounds what the scan below reads.
_PASS_THROUGH = frozenset(
    {"Result", "LockRows", "Materialize", "Memoize", "Subquery Scan", "Gather", "Gather Merge"}
    | {"Unique", "Incremental Sort"}
)
_JOINS = frozenset({"Nested Loop", "Merge Join"})
INDEX_SCANS = frozenset({"Index Scan", "Index Only Scan", "Bitmap Index Scan"})
HEAP_SCANS = frozenset({"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan"})

Plan = dict[str, Any]
"""One node of EXPLAIN (FORMAT JSON): "Node Type", "Plans" (children), "Relation Name", ..."""
Ancestors = tuple[tuple[Plan, int], ...]
"""The nodes above one, root first, each with the index of the child that leads down to it."""


class PlanFacts(msgspec.Struct, frozen=True):
    """A query's plan as vet and the docs read it."""

    plan: Plan
    indexes: tuple[str, ...]
    """The indexes the plan uses, in order of first use."""


def planner_settings(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Make any plan that needs no sequential scan win, and the plans reproducible."""
    for statement in (
        "SET enable_seqscan = off",
        "SET max_parallel_workers_per_gather = 0",
        "SET jit = off",
    ):
        conn.execute(statement.encode())


def explain(
    conn: psycopg.Connection[tuple[object, ...]], statement: str, *, sort: bool = True
) -> PlanFacts:
    """The generic plan of a statement with ``$n`` parameters (raises psycopg.Error)."""
    if not sort:
        conn.execute(b"SET enable_sort = off")
    try:
        row = conn.execute(b"EXPLAIN (GENERIC_PLAN, FORMAT JSON) " + statement.encode()).fetchone()
    finally:
        if not sort:
            conn.execute(b"RESET enable_sort")
    assert row is not None
    document = row[0]  # psycopg decodes the json
    assert isinstance(document, list)
    plan: Plan = document[0]["Plan"]
    indexes: list[str] = []
    for node, _ in walk(plan, ()):
        name = node.get("Index Name")
        if isinstance(name, str) and name not in indexes:
            indexes.append(name)
    return PlanFacts(plan, tuple(indexes))


def walk(node: Plan, ancestors: Ancestors) -> Iterator[tuple[Plan, Ancestors]]:
    """Every node with its ancestors, each as (ancestor, index of the child leading here)."""
    yield node, ancestors
    for index, child in enumerate(node.get("Plans", ())):
        yield from walk(child, (*ancestors, (node, index)))


def bounded_by_limit(ancestors: Ancestors) -> bool:
    """Whether a LIMIT stops the scan early: only order-keeping nodes lie between them."""
    for parent, index in reversed(ancestors):
        kind = parent["Node Type"]
        if kind == "Limit":
            return True
        if kind in _PASS_THROUGH or (kind in _JOINS and index == 0):
            continue
        return False
    return False


def leading_scans(node: Plan) -> Iterator[Plan]:
    """The scans whose order reaches ``node``: through order-keeping nodes and outer join sides."""
    kind = node["Node Type"]
    if kind in HEAP_SCANS:
        yield node
    elif kind in _PASS_THROUGH or kind in _JOINS:
        children = node.get("Plans", ())
        if children:
            yield from leading_scans(children[0])
