"""etlstore.services.access: audited users and grants; the login check."""

from __future__ import annotations

from uuid import uuid4

import pytest

from etlstore import Database
from etlstore.errors import Conflict, NotFound
from etlstore.queries import audit_log, users
from etlstore.services import SYSTEM, Actor, InvalidInput
from etlstore.services.access import (
    create_user,
    grant_permission,
    grant_role,
    revoke_permission,
    revoke_role,
    verify_login,
)

from ._factories import snapshot

NEW = {"username": "ada", "email": "ada@example.com", "password_hash": "hash:secret"}


async def _check_secret(password_hash: str) -> bool:
    return password_hash == "hash:secret"


async def test_create_user_audits_the_user_without_its_hash(db: Database) -> None:
    created = await create_user(db, NEW, actor=SYSTEM)
    [entry] = await audit_log.list_audit_entries(db, before_at=None, before_id=None, limit=5)
    assert (entry.action, entry.entity_type, entry.entity_id) == (
        "create",
        "users",
        str(created.id),
    )
    assert "hash:secret" not in str(entry.after)
    with pytest.raises(Conflict) as caught:
        await create_user(
            db, {**NEW, "email": "other@example.com", "username": "ADA"}, actor=SYSTEM
        )
    assert "username" in str(caught.value)
    with pytest.raises(InvalidInput) as missing:
        await create_user(db, {"username": "bob"}, actor=SYSTEM)
    assert "email" in str(missing.value)


async def test_verify_login_needs_the_right_password_and_an_active_user(db: Database) -> None:
    created = await create_user(db, NEW, actor=SYSTEM)

    async def wrong(password_hash: str) -> bool:
        return False

    assert await verify_login(db, "ADA", _check_secret) == created.id
    assert await verify_login(db, "ada", wrong) is None
    assert await verify_login(db, "nobody", _check_secret) is None
    await users.update_user(db, id=created.id, username="ada", email=created.email, is_active=False)
    assert await verify_login(db, "ada", _check_secret) is None


async def test_grants_and_revokes_are_audited_once(db: Database) -> None:
    admin = Actor("root")
    user = await create_user(db, NEW, actor=SYSTEM)
    role = await users.create_role(db, name="operator", description="")
    permission = await users.create_permission(db, code="pipeline:run", description="")

    assert await grant_role(db, user.id, role.id, actor=admin)
    assert not await grant_role(db, user.id, role.id, actor=admin)
    assert await grant_permission(db, role.id, permission.id, actor=admin)
    assert await users.check_user_permission(db, user_id=user.id, code="pipeline:run")
    assert await revoke_permission(db, role.id, permission.id, actor=admin)
    assert not await revoke_permission(db, role.id, permission.id, actor=admin)
    assert await revoke_role(db, user.id, role.id, actor=admin)
    assert not await revoke_role(db, user.id, role.id, actor=admin)

    entries = await audit_log.list_audit_entries(db, before_at=None, before_id=None, limit=10)
    assert [(e.action, e.entity_type) for e in reversed(entries) if e.actor == "root"] == [
        ("grant", "user_roles"),
        ("grant", "role_permissions"),
        ("revoke", "role_permissions"),
        ("revoke", "user_roles"),
    ]
    assert entries[0].entity_id == f"{user.id}:{role.id}"


async def test_granting_to_an_unknown_id_is_not_found_and_writes_no_audit_row(
    db: Database,
) -> None:
    user = await create_user(db, NEW, actor=SYSTEM)
    role = await users.create_role(db, name="operator", description="")
    before = await snapshot(db)
    with pytest.raises(NotFound, match="user"):
        await grant_role(db, uuid4(), role.id, actor=SYSTEM)
    with pytest.raises(NotFound, match="role"):
        await grant_role(db, user.id, uuid4(), actor=SYSTEM)
    with pytest.raises(NotFound, match="permission"):
        await grant_permission(db, role.id, uuid4(), actor=SYSTEM)
    assert await snapshot(db) == before
