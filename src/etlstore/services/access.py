"""Users, role grants and permission grants, each change audited; the login check.

password_hash is read only by ``verify_login`` (through the one query that returns it) and is
never written to the audit log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

import msgspec

from etlstore._database import Database
from etlstore.errors import InvalidReference
from etlstore.queries import Executor, users
from etlstore.queries.users import CreateUserRow
from etlstore.services._common import Actor, audit, convert, not_found

__all__ = [
    "NewUser",
    "PasswordCheck",
    "create_user",
    "grant_permission",
    "grant_role",
    "revoke_permission",
    "revoke_role",
    "verify_login",
]

#: ``check(password_hash)``: whether the password the user typed matches the stored hash.
PasswordCheck = Callable[[str], Awaitable[bool]]

# Foreign keys of the link tables -> what an unknown id there names.
_REFERENCED = {
    "user_roles_user_id_fkey": "user",
    "user_roles_role_id_fkey": "role",
    "role_permissions_role_id_fkey": "role",
    "role_permissions_permission_id_fkey": "permission",
}


class NewUser(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A user to create; hashing the password is the caller's (etlstore never sees it)."""

    username: str
    email: str
    password_hash: str


async def create_user(db: Database, user: object, *, actor: Actor) -> CreateUserRow:
    """Create a user (Conflict naming username or email when taken, in any case), audited."""
    valid = convert(user, NewUser)
    async with db.transaction() as tx:
        created = await users.create_user(
            tx, username=valid.username, email=valid.email, password_hash=valid.password_hash
        )
        await audit(
            tx, actor, action="create", entity_type="users", entity_id=created.id,
            before=None, after=created,
        )  # fmt: skip
        return created


async def verify_login(db: Database, username: str, check: PasswordCheck) -> UUID | None:
    """The id of the active user ``username`` whose hash ``check`` accepts, else None."""
    credentials = await users.get_user_credentials_by_username(db, username=username)
    if credentials is None or not credentials.is_active:
        return None
    return credentials.id if await check(credentials.password_hash) else None


async def grant_role(db: Database, user_id: UUID, role_id: UUID, *, actor: Actor) -> bool:
    """Give a user a role; False when they held it already. NotFound for an unknown id."""
    async with db.transaction() as tx:
        try:
            granted = await users.grant_role_to_user(tx, user_id=user_id, role_id=role_id)
        except InvalidReference as exc:
            raise _unknown(exc, user=user_id, role=role_id) from exc
        if granted is not None:
            await _audit_link(tx, actor, "grant", "user_roles", (user_id, role_id), None, granted)
        return granted is not None


async def revoke_role(db: Database, user_id: UUID, role_id: UUID, *, actor: Actor) -> bool:
    """Take a role from a user; False when they did not hold it."""
    async with db.transaction() as tx:
        revoked = await users.revoke_role_from_user(tx, user_id=user_id, role_id=role_id)
        if revoked:
            link = {"user_id": str(user_id), "role_id": str(role_id)}
            await _audit_link(tx, actor, "revoke", "user_roles", (user_id, role_id), link, None)
        return bool(revoked)


async def grant_permission(
    db: Database, role_id: UUID, permission_id: UUID, *, actor: Actor
) -> bool:
    """Let a role do something; False when it could already. NotFound for an unknown id."""
    async with db.transaction() as tx:
        try:
            granted = await users.grant_permission_to_role(
                tx, role_id=role_id, permission_id=permission_id
            )
        except InvalidReference as exc:
            raise _unknown(exc, role=role_id, permission=permission_id) from exc
        if granted is not None:
            ids = (role_id, permission_id)
            await _audit_link(tx, actor, "grant", "role_permissions", ids, None, granted)
        return granted is not None


async def revoke_permission(
    db: Database, role_id: UUID, permission_id: UUID, *, actor: Actor
) -> bool:
    """Stop a role from doing something; False when it could not."""
    async with db.transaction() as tx:
        revoked = await users.revoke_permission_from_role(
            tx, role_id=role_id, permission_id=permission_id
        )
        if revoked:
            link = {"role_id": str(role_id), "permission_id": str(permission_id)}
            ids = (role_id, permission_id)
            await _audit_link(tx, actor, "revoke", "role_permissions", ids, link, None)
        return bool(revoked)


def _unknown(exc: InvalidReference, **ids: UUID) -> Exception:
    what = _REFERENCED.get(exc.constraint or "")
    return exc if what is None else not_found(what, ids[what])


async def _audit_link(
    tx: Executor,
    actor: Actor,
    action: str,
    table: str,
    ids: tuple[UUID, UUID],
    before: object,
    after: object,
) -> None:
    await audit(
        tx,
        actor,
        action=action,
        entity_type=table,
        entity_id=f"{ids[0]}:{ids[1]}",
        before=before,
        after=after,
    )
