"""The errors of the services, beyond the runtime's (``etlstore.errors``)."""

from __future__ import annotations

from etlstore.errors import CheckViolation, EtlstoreError

__all__ = ["DependencyCycle", "InvalidInput"]


class InvalidInput(EtlstoreError):
    """A caller's input failed validation before any SQL ran; ``field`` is its path (``$.x``)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class DependencyCycle(CheckViolation):
    """A job's component dependencies would form a cycle (or a self-edge).

    ``components`` names the components of the cycle, in order, when they are known.
    """

    def __init__(
        self, message: str, *, constraint: str | None, components: tuple[str, ...]
    ) -> None:
        super().__init__(
            message,
            sqlstate="23514",
            table="component_dependencies",
            constraint=constraint,
        )
        self.components = components
