"""What every service shares: the acting user, input validation, audit rows."""

from __future__ import annotations

import re
from typing import TypeVar
from uuid import UUID

import msgspec

from etlstore.errors import NotFound
from etlstore.queries import Executor, audit_log, config_versions
from etlstore.queries.models import ConfigEntityType
from etlstore.services.errors import InvalidInput

__all__ = ["SYSTEM", "Actor", "audit", "convert", "not_found", "record_version"]

_T = TypeVar("_T")
_PATH = re.compile(r" - at `(?P<path>[^`]+)`$")
_UNKNOWN = re.compile(r"unknown field `(?P<name>[^`]+)`")


class Actor(msgspec.Struct, frozen=True):
    """Who makes a change: shown in audit rows and configuration versions."""

    name: str
    user_id: UUID | None = None


#: The platform itself (schedulers, workers): no user.
SYSTEM = Actor("system")


def convert(data: object, type_: type[_T], *, name: str = "$") -> _T:
    """``data`` (untrusted: builtins, Structs or both) as a validated ``type_``, else InvalidInput.

    Structs are not validated when constructed, so everything goes through builtins first.
    ``name`` is what the error's field path starts with (the argument's name, or ``$``).
    """
    try:
        return msgspec.convert(msgspec.to_builtins(data), type_)
    except (msgspec.ValidationError, TypeError) as exc:
        message = str(exc)
        match = _PATH.search(message)
        if match:
            field = match.group("path")
        else:
            unknown = _UNKNOWN.search(message)
            field = f"$.{unknown.group('name')}" if unknown else "$"
        field = name + field[1:]
        what = getattr(type_, "__name__", str(type_))
        raise InvalidInput(f"invalid {what} in {name}: {message}", field=field) from exc


def not_found(what: str, key: object) -> NotFound:
    """The NotFound for an unknown ``what`` (e.g. ``pipeline``) named by ``key``."""
    return NotFound(f"{what} {key} not found")


async def audit(
    tx: Executor,
    actor: Actor,
    *,
    action: str,
    entity_type: str,
    entity_id: object,
    before: object,
    after: object,
) -> None:
    """Append the audit row of a change, in the caller's transaction."""
    await audit_log.create_audit_entry(
        tx,
        actor_user_id=actor.user_id,
        actor=actor.name,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        before=None if before is None else msgspec.to_builtins(before),
        after=None if after is None else msgspec.to_builtins(after),
    )


async def record_version(
    tx: Executor,
    actor: Actor,
    *,
    entity_type: ConfigEntityType,
    audit_entity_type: str,
    entity_id: UUID,
    spec: msgspec.Struct,
    action: str,
    before: object,
    restored: int | None = None,
) -> int:
    """Write the next configuration version of an entity and its audit row; the version number.

    The caller holds the entity's row lock (lock_pipeline / lock_job), which orders the numbers.
    """
    configuration = msgspec.to_builtins(spec)
    version = await config_versions.create_config_version(
        tx,
        entity_type=entity_type,
        entity_id=entity_id,
        configuration=configuration,
        created_by=actor.user_id,
        actor=actor.name,
    )
    after: dict[str, object] = {"version": version.version, "configuration": configuration}
    if restored is not None:
        after["restored_version"] = restored
    await audit(
        tx,
        actor,
        action=action,
        entity_type=audit_entity_type,
        entity_id=entity_id,
        before=before,
        after=after,
    )
    return version.version
