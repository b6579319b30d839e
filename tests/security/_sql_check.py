"""A static check: every SQL statement in src/ is a constant, never text built at run time.

Flags a call of ``execute``, ``executemany``, ``fetch``, ``fetchrow``, ``fetchval``, ``fetchmany``,
``prepare``, ``cursor``, ``copy_from_query`` or ``copy`` whose SQL argument (the first positional,
or ``query``/``command``/``statement``) is not one of:

- a literal, or a name bound to one at module level, exactly once (``Final`` or not), also
  through ``from module import NAME`` of a checked module and ``module.NAME``;
- a local name whose every assignment in its function is such a value, or a loop variable
  over a literal or module-level tuple/list of such values;
- a parameter of the enclosing function: the function then forwards SQL, and every call of it
  (by name, anywhere in the checked files) is checked the same way at that argument;
- psycopg's composition ``sql.SQL(<constant>)``, its ``.format(...)`` with ``sql.Identifier``,
  ``sql.Literal`` or ``sql.Placeholder`` arguments (psycopg quotes those, so no text of the
  caller's reaches the statement unquoted) and its ``.join(...)`` of such compositions.

Everything else is reported, e.g. f-strings, ``+``, ``%`` and ``str.format`` on SQL text, and
names built at run time. asyncpg's ``copy_records_to_table``/``copy_to_table``/``copy_from_table``
take a table name that asyncpg quotes as an identifier, so they are not statements to check.

Run it: ``python -m tests.security._sql_check src`` prints ``path:line: message`` per finding.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = ["Finding", "check_tree", "main"]

SQL_METHODS: Final = frozenset(
    {
        "execute",
        "executemany",
        "fetch",
        "fetchrow",
        "fetchval",
        "fetchmany",
        "prepare",
        "cursor",
        "copy_from_query",
        "copy",
    }
)
_SQL_KEYWORDS: Final = ("query", "command", "statement")
_QUOTING_COMPOSABLES: Final = frozenset({"Identifier", "Literal", "Placeholder"})

_Function = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
# Stands for a value only known at run time (never constant).
_RUN_TIME: Final = ast.JoinedStr(values=[])


@dataclass(frozen=True, order=True)
class Finding:
    """One SQL argument that is not a constant."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class _Module:
    path: str
    name: str
    tree: ast.Module
    # Module-level names assigned exactly once -> their value.
    constants: dict[str, ast.expr] = field(default_factory=dict)
    # Local alias -> (module, name) for ``from module import name``; alias -> module for imports.
    imported_names: dict[str, tuple[str, str]] = field(default_factory=dict)
    imported_modules: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Forwarder:
    """A function that passes one of its parameters on as SQL."""

    parameter: str
    position: int | None  # among positional arguments at call sites (self excluded)


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _load(path: Path, root: Path) -> _Module:
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _Module(str(path), _module_name(path, root), tree)
    counts: dict[str, int] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            if isinstance(target, ast.Name) and value is not None:
                counts[target.id] = counts.get(target.id, 0) + 1
                module.constants[target.id] = value
        if isinstance(node, ast.ImportFrom):
            package = module.name.rsplit(".", node.level)[0] if node.level else ""
            source = ".".join(p for p in (package, node.module or "") if p)
            for alias in node.names:
                module.imported_names[alias.asname or alias.name] = (source, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                module.imported_modules[alias.asname or alias.name] = alias.name
    for name, count in counts.items():
        if count > 1:
            del module.constants[name]
    return module


def _parameters(function: _Function) -> list[str]:
    args = function.args
    return [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]


def _positional(function: _Function, in_class: bool) -> list[str]:
    names = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
    return names[1:] if in_class and names and names[0] in ("self", "cls") else names


def _assigned_in(function: _Function, name: str) -> list[ast.expr] | None:
    """Every value bound to ``name`` in ``function``; None when it is never bound there.

    ``for name in X`` binds an element of X (given as ``Starred(X)``); any other binding that
    is not a plain assignment (``+=``, unpacking loop targets, ``with ... as``) counts as text
    built at run time.
    """
    if isinstance(function, ast.Lambda):
        return None
    values: list[ast.expr] = []
    bound = False
    for node in ast.walk(function):
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.NamedExpr):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                bound = True
                values.append(node.value if node.value is not None else _RUN_TIME)
        elif (
            isinstance(node, ast.For | ast.AsyncFor)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
        ):
            bound = True
            values.append(ast.Starred(value=node.iter))  # stands for "an element of"
        elif isinstance(node, ast.AugAssign | ast.For | ast.AsyncFor | ast.withitem):
            target = node.optional_vars if isinstance(node, ast.withitem) else node.target
            if target is not None and any(
                isinstance(n, ast.Name) and n.id == name for n in ast.walk(target)
            ):
                bound = True
                values.append(_RUN_TIME)
    return values if bound else None


class _Checker:
    def __init__(self, modules: Sequence[_Module]) -> None:
        self.modules = {m.name: m for m in modules}
        self.forwarders: dict[str, set[_Forwarder]] = {}
        self.findings: set[Finding] = set()
        self.methods: set[int] = set()  # ids of functions defined in a class body

    # -- what counts as constant SQL -------------------------------------------------------

    def _module_constant(self, module: _Module, name: str, seen: frozenset[str]) -> bool:
        key = f"{module.name}.{name}"
        if key in seen:
            return False
        if name in module.constants:
            return self._constant_value(module, module.constants[name], seen | {key})
        if name in module.imported_names:
            source, original = module.imported_names[name]
            other = self.modules.get(source)
            return other is not None and self._module_constant(other, original, seen | {key})
        return False

    def _constant_value(self, module: _Module, value: ast.expr, seen: frozenset[str]) -> bool:
        """A value fixed when the module is imported: literals, and names of such values."""
        if isinstance(value, ast.Constant):
            return True
        if isinstance(value, ast.Name):
            return self._module_constant(module, value.id, seen)
        if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name):
            other = self.modules.get(module.imported_modules.get(value.value.id, ""))
            if other is None and value.value.id in module.imported_names:
                other = self.modules.get(".".join(module.imported_names[value.value.id]))
            return other is not None and self._module_constant(other, value.attr, seen)
        return self._composition(module, value, [], seen)

    def _constant_elements(self, module: _Module, value: ast.expr, seen: frozenset[str]) -> bool:
        """Whether ``value`` is a tuple, list or set of constants, or a module name bound to one."""
        if isinstance(value, ast.Tuple | ast.List | ast.Set):
            return all(self._constant_value(module, e, seen) for e in value.elts)
        if isinstance(value, ast.Name) and value.id in module.constants:
            key = f"{module.name}.{value.id}"
            return key not in seen and self._constant_elements(
                module, module.constants[value.id], seen | {key}
            )
        return False

    def _composition(
        self, module: _Module, value: ast.expr, scopes: list[_Function], seen: frozenset[str]
    ) -> bool:
        """psycopg.sql: SQL(constant), .format(quoting composables...), .join(compositions)."""
        if not isinstance(value, ast.Call) or not isinstance(value.func, ast.Attribute):
            return False
        method = value.func.attr
        if method == "SQL":
            return len(value.args) == 1 and self._constant_value(module, value.args[0], seen)
        if method == "format" and self._composition(module, value.func.value, scopes, seen):
            return all(
                self._quoted(module, a, scopes, seen)
                for a in (*value.args, *(k.value for k in value.keywords))
            )
        if method == "join" and self._composition(module, value.func.value, scopes, seen):
            [parts] = value.args if len(value.args) == 1 else [None]
            if isinstance(parts, ast.GeneratorExp | ast.ListComp):
                return self._quoted(module, parts.elt, scopes, seen)
            if isinstance(parts, ast.List | ast.Tuple):
                return all(self._quoted(module, p, scopes, seen) for p in parts.elts)
        return False

    def _quoted(
        self, module: _Module, value: ast.expr, scopes: list[_Function], seen: frozenset[str]
    ) -> bool:
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute | ast.Name)
            and (value.func.attr if isinstance(value.func, ast.Attribute) else value.func.id)
            in _QUOTING_COMPOSABLES
        ):
            return True
        return self._composition(module, value, scopes, seen)

    def _sql_is_constant(
        self,
        module: _Module,
        value: ast.expr,
        scopes: list[_Function],
        locals_seen: frozenset[tuple[int, str]] = frozenset(),
    ) -> bool:
        if isinstance(value, ast.Starred):
            return self._constant_elements(module, value.value, frozenset())
        if isinstance(value, ast.IfExp):
            return all(
                self._sql_is_constant(module, v, scopes, locals_seen)
                for v in (value.body, value.orelse)
            )
        if isinstance(value, ast.Name):
            for depth in range(len(scopes) - 1, -1, -1):
                function = scopes[depth]
                if value.id in _parameters(function):
                    return self._forward(function, value.id)
                assigned = _assigned_in(function, value.id)
                if assigned is not None:
                    key = (id(function), value.id)
                    return key not in locals_seen and all(
                        self._sql_is_constant(module, v, scopes[: depth + 1], locals_seen | {key})
                        for v in assigned
                    )
        return self._constant_value(module, value, frozenset()) or self._composition(
            module, value, scopes, frozenset()
        )

    # -- forwarding functions ----------------------------------------------------------------

    def _forward(self, function: _Function, parameter: str) -> bool:
        """Record that ``function`` passes ``parameter`` on as SQL; lambdas may not."""
        if isinstance(function, ast.Lambda):
            return False
        position = None
        positional = _positional(function, id(function) in self.methods)
        if parameter in positional:
            position = positional.index(parameter)
        self.forwarders.setdefault(function.name, set()).add(_Forwarder(parameter, position))
        return True

    def _sql_arguments(self, call: ast.Call) -> Iterator[tuple[ast.expr, str]]:
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name is None:
            return
        if name in SQL_METHODS and isinstance(func, ast.Attribute):
            if call.args:
                yield call.args[0], f"{name}()"
            for keyword in call.keywords:
                if keyword.arg in _SQL_KEYWORDS:
                    yield keyword.value, f"{name}()"
        for forwarder in self.forwarders.get(name, ()):
            what = f"{name}() forwards {forwarder.parameter} as SQL"
            if forwarder.position is not None and forwarder.position < len(call.args):
                yield call.args[forwarder.position], what
            for keyword in call.keywords:
                if keyword.arg == forwarder.parameter:
                    yield keyword.value, what

    def _visit(self, module: _Module, node: ast.AST, scopes: list[_Function]) -> None:
        if isinstance(node, ast.ClassDef):
            self.methods.update(id(child) for child in node.body)
        if isinstance(node, ast.Call):
            checked: set[int] = set()
            for argument, what in self._sql_arguments(node):
                if isinstance(argument, ast.Starred) or id(argument) in checked:
                    continue  # *args: checked where they are built; one finding per argument
                checked.add(id(argument))
                if not self._sql_is_constant(module, argument, scopes):
                    self.findings.add(
                        Finding(
                            module.path,
                            node.lineno,
                            f"SQL passed to {what} is not a constant string "
                            f"({type(argument).__name__}: {ast.unparse(argument)[:60]})",
                        )
                    )
        inner: list[_Function] = [*scopes, node] if isinstance(node, _Function) else scopes
        for child in ast.iter_child_nodes(node):
            self._visit(module, child, inner)

    def run(self) -> list[Finding]:
        """Check every module until no new forwarding function turns up."""
        while True:
            known = {name: set(f) for name, f in self.forwarders.items()}
            self.findings.clear()
            for module in self.modules.values():
                self._visit(module, module.tree, [])
            if known == self.forwarders:
                return sorted(self.findings)


def check_tree(root: Path, paths: Iterable[Path] | None = None) -> list[Finding]:
    """The findings over ``paths`` (default: every ``*.py`` under ``root``)."""
    files = sorted(paths if paths is not None else root.rglob("*.py"))
    return _Checker([_load(path, root) for path in files]).run()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.security._sql_check DIR``: print findings; exit 1 when there are any."""
    args = list(sys.argv[1:] if argv is None else argv)
    root = Path(args[0] if args else "src")
    findings = check_tree(root)
    for finding in findings:
        print(finding)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
