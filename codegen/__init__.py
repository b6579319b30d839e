"""The generator: reviewed SQL files -> typed async functions and msgspec Structs.

Phases, one module each, joined by data: _parse (files) -> _analyze (live database, with
_catalog and _nullability) -> _ir (plain Structs) -> _render (text) -> _write (ruff, files).
Run it as ``python -m codegen``.
"""
