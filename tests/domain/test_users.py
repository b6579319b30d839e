"""sql/users.sql: users, roles, permissions, grants; password_hash stays out of every result."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from uuid import uuid4

import msgspec
import pytest

import etlstore.queries
from etlstore import Database
from etlstore.errors import CheckViolation, Conflict, InvalidReference
from etlstore.queries import users
from etlstore.queries.models import Permission, Role

from ._factories import make_user, walk_pages


async def test_get_user_returns_the_user_without_its_password_hash(db: Database) -> None:
    created = await make_user(db, "ada")
    found = await users.get_user(db, id=created.id)
    assert found is not None
    assert (found.id, found.username, found.email, found.is_active) == (
        created.id,
        "ada",
        "ada@example.com",
        True,
    )


async def test_get_user_returns_none_for_an_unknown_id(db: Database) -> None:
    assert await users.get_user(db, id=uuid4()) is None


async def test_lookups_by_username_and_email_ignore_case(db: Database) -> None:
    created = await make_user(db, "Ada")
    by_name = await users.get_user_by_username(db, username="ADA")
    by_email = await users.get_user_by_email(db, email="ADA@EXAMPLE.COM")
    assert by_name is not None
    assert by_name.id == created.id
    assert by_email is not None
    assert by_email.id == created.id


async def test_credentials_carry_the_hash_for_the_login_check(db: Database) -> None:
    await make_user(db, "ada")
    credentials = await users.get_user_credentials_by_username(db, username="ADA")
    assert credentials is not None
    assert credentials.password_hash == "hash:ada"
    assert credentials.is_active


@pytest.mark.parametrize(("username", "email", "column"), [
    ("ADA", "other@example.com", "username"),
    ("other", "Ada@Example.com", "email"),
])  # fmt: skip
async def test_a_username_or_email_taken_in_any_case_is_a_conflict_naming_it(
    db: Database, username: str, email: str, column: str
) -> None:
    await make_user(db, "ada")
    with pytest.raises(Conflict) as caught:
        await users.create_user(db, username=username, email=email, password_hash="x")
    assert caught.value.constraint == f"users_{column}_lower_key"
    assert column in str(caught.value)
    assert [u.username for u in await users.list_users(db, after_username=None, limit=10)] == [
        "ada"
    ]


async def test_a_malformed_email_is_a_check_violation(db: Database) -> None:
    with pytest.raises(CheckViolation) as caught:
        await users.create_user(db, username="ada", email="nope", password_hash="x")
    assert caught.value.constraint == "users_email_check"
    assert caught.value.columns == ("email",)


@pytest.mark.parametrize("limit", [1, 2, 5, 6])
async def test_list_users_walks_every_user_once_sorted_ignoring_case(
    db: Database, limit: int
) -> None:
    for name in ["bob", "Alice", "carol", "Dave", "eve"]:
        await make_user(db, name)

    async def page(last: users.ListUsersRow | None) -> list[users.ListUsersRow]:
        after = None if last is None else last.username
        return await users.list_users(db, after_username=after, limit=limit)

    pages = await walk_pages(page, limit)
    assert [u.username for p in pages for u in p] == ["Alice", "bob", "carol", "Dave", "eve"]
    assert pages[-1] == [] or len(pages[-1]) < limit


async def test_list_users_on_no_users_is_empty(db: Database) -> None:
    assert await users.list_users(db, after_username=None, limit=10) == []


async def test_update_and_delete_return_none_for_an_unknown_user(db: Database) -> None:
    missing = uuid4()
    assert (
        await users.update_user(db, id=missing, username="x", email="x@y", is_active=True) is None
    )
    assert await users.update_user_password(db, id=missing, password_hash="h") == 0
    assert await users.delete_user(db, id=missing) is None


async def test_effective_permissions_come_once_through_every_role(db: Database) -> None:
    user = await make_user(db, "ada")
    admin = await users.create_role(db, name="admin", description="")
    operator = await users.create_role(db, name="operator", description="")
    run = await users.create_permission(db, code="pipeline:run", description="")
    edit = await users.create_permission(db, code="pipeline:edit", description="")
    await users.create_permission(db, code="user:delete", description="")
    for role, permission in [(admin, run), (admin, edit), (operator, run)]:
        assert await users.grant_permission_to_role(
            db, role_id=role.id, permission_id=permission.id
        )
    for role in (admin, operator):
        assert await users.grant_role_to_user(db, user_id=user.id, role_id=role.id)

    permissions = await users.list_user_permissions(db, user_id=user.id)

    assert [p.code for p in permissions] == ["pipeline:edit", "pipeline:run"]
    assert await users.check_user_permission(db, user_id=user.id, code="pipeline:run")
    assert not await users.check_user_permission(db, user_id=user.id, code="user:delete")
    assert [r.name for r in await users.list_user_roles(db, user_id=user.id)] == [
        "admin",
        "operator",
    ]


async def test_an_inactive_user_holds_no_permission(db: Database) -> None:
    user = await make_user(db, "ada")
    role = await users.create_role(db, name="admin", description="")
    permission = await users.create_permission(db, code="pipeline:run", description="")
    await users.grant_permission_to_role(db, role_id=role.id, permission_id=permission.id)
    await users.grant_role_to_user(db, user_id=user.id, role_id=role.id)
    await users.update_user(db, id=user.id, username="ada", email=user.email, is_active=False)
    assert not await users.check_user_permission(db, user_id=user.id, code="pipeline:run")


async def test_granting_twice_returns_none_and_revoking_counts(db: Database) -> None:
    user = await make_user(db, "ada")
    role = await users.create_role(db, name="admin", description="")
    assert await users.grant_role_to_user(db, user_id=user.id, role_id=role.id) is not None
    assert await users.grant_role_to_user(db, user_id=user.id, role_id=role.id) is None
    assert await users.revoke_role_from_user(db, user_id=user.id, role_id=role.id) == 1
    assert await users.revoke_role_from_user(db, user_id=user.id, role_id=role.id) == 0


async def test_granting_an_unknown_role_is_an_invalid_reference(db: Database) -> None:
    user = await make_user(db, "ada")
    with pytest.raises(InvalidReference) as caught:
        await users.grant_role_to_user(db, user_id=user.id, role_id=uuid4())
    assert caught.value.columns == ("role_id",)


async def test_a_malformed_permission_code_is_a_check_violation(db: Database) -> None:
    with pytest.raises(CheckViolation) as caught:
        await users.create_permission(db, code="Run Pipelines", description="")
    assert caught.value.constraint == "permissions_code_check"


@pytest.mark.parametrize("limit", [1, 3])
async def test_roles_permissions_and_role_users_page_in_order(db: Database, limit: int) -> None:
    role = await users.create_role(db, name="viewer", description="")
    for name in ["c", "a", "b"]:
        await users.create_role(db, name=name, description="")
        await users.create_permission(db, code=f"{name}:read", description="")
        user = await make_user(db, name)
        await users.grant_role_to_user(db, user_id=user.id, role_id=role.id)

    async def roles(last: Role | None) -> list[Role]:
        after = None if last is None else last.name
        return await users.list_roles(db, after_name=after, limit=limit)

    async def permissions(last: Permission | None) -> list[Permission]:
        after = None if last is None else last.code
        return await users.list_permissions(db, after_code=after, limit=limit)

    async def holders(last: users.ListRoleUsersRow | None) -> list[users.ListRoleUsersRow]:
        after = None if last is None else last.id
        return await users.list_role_users(db, role_id=role.id, after_user_id=after, limit=limit)

    assert [r.name for p in await walk_pages(roles, limit) for r in p] == ["a", "b", "c", "viewer"]
    assert [p.code for page in await walk_pages(permissions, limit) for p in page] == [
        "a:read",
        "b:read",
        "c:read",
    ]
    walked = [u.id for p in await walk_pages(holders, limit) for u in p]
    assert walked == sorted(walked)
    assert len(walked) == 3


def _row_types() -> dict[str, type[msgspec.Struct]]:
    """The return row type of every generated query function, by function name."""
    found: dict[str, type[msgspec.Struct]] = {}
    for info in pkgutil.iter_modules(etlstore.queries.__path__):
        module = importlib.import_module(f"etlstore.queries.{info.name}")
        for name, function in inspect.getmembers(module, inspect.iscoroutinefunction):
            if function.__module__ != module.__name__:
                continue
            hint = typing.get_type_hints(function)["return"]
            for arg in (hint, *typing.get_args(hint)):
                for inner in (arg, *typing.get_args(arg)):
                    if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
                        found[name] = inner
    return found


def test_no_query_but_the_login_one_returns_password_hash() -> None:
    row_types = _row_types()
    assert len(row_types) > 100  # the scan did find the generated queries
    returning_hash = sorted(
        name
        for name, row in row_types.items()
        if "password_hash" in {f.name for f in msgspec.structs.fields(row)}
    )
    assert returning_hash == ["get_user_credentials_by_username"]


async def test_roles_and_permissions_by_id_and_name_update_and_delete(db: Database) -> None:
    role = await users.create_role(db, name="viewer", description="reads")
    permission = await users.create_permission(db, code="pipeline:read", description="")
    assert await users.get_role(db, id=role.id) == role
    assert await users.get_role_by_name(db, name="viewer") == role
    assert await users.get_permission(db, id=permission.id) == permission
    assert await users.get_permission_by_code(db, code="pipeline:read") == permission
    await users.grant_permission_to_role(db, role_id=role.id, permission_id=permission.id)
    assert [p.code for p in await users.list_role_permissions(db, role_id=role.id)] == [
        "pipeline:read"
    ]

    renamed = await users.update_role(db, id=role.id, name="reader", description="reads all")
    recoded = await users.update_permission(
        db, id=permission.id, code="job:read", description="jobs"
    )
    assert renamed is not None
    assert (renamed.name, renamed.description) == ("reader", "reads all")
    assert recoded is not None
    assert recoded.code == "job:read"

    assert await users.delete_permission(db, id=permission.id) == recoded
    assert await users.list_role_permissions(db, role_id=role.id) == []
    assert await users.delete_role(db, id=role.id) == renamed
    missing = uuid4()
    assert await users.get_role(db, id=missing) is None
    assert await users.get_role_by_name(db, name="viewer") is None
    assert await users.get_permission(db, id=missing) is None
    assert await users.get_permission_by_code(db, code="job:read") is None
    assert await users.update_role(db, id=missing, name="x", description="") is None
    assert await users.update_permission(db, id=missing, code="a:b", description="") is None
    assert await users.delete_role(db, id=missing) is None
    assert await users.delete_permission(db, id=missing) is None
