"""The generated query functions, found by introspection so that new queries are covered."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

import etlstore.queries

__all__ = ["QueryFunction", "query_functions", "takes_text"]

QueryFunction = Callable[..., Coroutine[Any, Any, object]]


def query_functions() -> list[tuple[str, QueryFunction]]:
    """``(module.function, function)`` for every generated query, sorted by name."""
    found = []
    for info in pkgutil.iter_modules(etlstore.queries.__path__):
        if info.name.startswith("_") or info.name == "models":
            continue
        module = importlib.import_module(f"etlstore.queries.{info.name}")
        for name, function in inspect.getmembers(module, inspect.iscoroutinefunction):
            if function.__module__ == module.__name__:
                found.append((f"{info.name}.{name}", function))
    return sorted(found, key=lambda item: item[0])


def takes_text(function: QueryFunction) -> bool:
    """Whether a parameter is a str, directly or inside its records/params Structs."""
    hints = typing.get_type_hints(function)
    return any(_mentions_str(tp) for name, tp in hints.items() if name != "return")


def _mentions_str(tp: object) -> bool:
    if tp is str:
        return True
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return any(_mentions_str(t) for t in typing.get_type_hints(tp).values())
    return any(_mentions_str(arg) for arg in typing.get_args(tp))
