"""A DSN password and a password_hash never leave the place they belong.

tests/runtime/test_database.py already checks the DSN password against ``repr(db)``, a
pass-through error, an unreachable port and DEBUG logs. This module follows a password_hash and
the DSN password through the users' queries and services, their typed errors, every row and
object repr, all logging at DEBUG, the slow-query log (every statement logged as slow) and
pg_stat_statements.
"""

from __future__ import annotations

import logging
import traceback
import typing
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import msgspec
import pytest

import etlstore
from etlstore._config import with_database
from etlstore._migrations import apply_migrations
from etlstore.errors import CheckViolation, Conflict, EtlstoreError, InvalidValue, Unavailable
from etlstore.queries import users
from etlstore.services import SYSTEM, InvalidInput, access
from tests.conftest import MIGRATIONS
from tests.domain._factories import snapshot
from tests.security._generated import query_functions

_PASSWORD: Final = "pw-canary-3b9d41"
_HASH: Final = "$argon2id$v=19$m=65536,t=3,p=4$hash-canary-7e21c0"


def _with_password(dsn: str) -> str:
    """The DSN with the canary password, unless it has a real one (then that is the canary).

    The embedded test server trusts local connections: the canary rides along, unused.
    """
    parts = urlsplit(dsn)
    if parts.password:
        return dsn
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user or 'postgres'}:{_PASSWORD}@{host}"))


@pytest.fixture(scope="module")
def secrets_dsn(make_database: Callable[[], str]) -> str:
    dsn = make_database()
    apply_migrations(dsn, MIGRATIONS)
    return _with_password(dsn)


def _leaks(text: str, dsn: str) -> list[str]:
    """Which secrets (the DSN's password, the hash) occur in ``text``."""
    return [secret for secret in (urlsplit(dsn).password, _HASH) if secret and secret in text]


@pytest.fixture
async def db(secrets_dsn: str) -> AsyncIterator[etlstore.Database]:
    """Every statement counts as slow, so every one is logged at WARNING."""
    async with etlstore.connect(secrets_dsn, max_size=2, slow_query_s=0.0) as database:
        yield database


async def _raised(call: Any) -> EtlstoreError:
    with pytest.raises(EtlstoreError) as raised:
        await call
    return raised.value


async def test_the_hash_and_password_stay_out_of_logs_errors_and_reprs(
    db: etlstore.Database, secrets_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    name = f"ada-{uuid.uuid4().hex[:8]}"
    new = {"username": name, "email": f"{name}@example.com", "password_hash": _HASH}
    created = await access.create_user(db, new, actor=SYSTEM)

    async def accept(password_hash: str) -> bool:
        return password_hash == _HASH

    assert await access.verify_login(db, name, accept) == created.id
    errors = [
        await _raised(access.create_user(db, new, actor=SYSTEM)),
        await _raised(access.create_user(db, {**new, "password_hash": 7}, actor=SYSTEM)),
        await _raised(
            users.create_user(db, username=name + "2", email="no-at-sign", password_hash=_HASH)
        ),
        await _raised(users.update_user_password(db, password_hash=_HASH + "\x00", id=created.id)),
    ]
    assert [type(e) for e in errors] == [Conflict, InvalidInput, CheckViolation, InvalidValue]
    async with db.transaction() as tx:
        assert await users.update_user_password(tx, password_hash=_HASH, id=created.id) == 1
        reprs = [repr(tx)]
    reprs += [repr(db), repr(db.stats()), repr(await db.health()), repr(created)]
    reprs += [repr(await users.get_user(db, id=created.id))]
    reprs += [repr(await users.get_user_by_username(db, username=name))]
    reprs += [repr(await users.list_users(db, after_username=None, limit=100))]
    credentials = await users.get_user_credentials_by_username(db, username=name)
    assert _leaks(repr(credentials), secrets_dsn) == [_HASH]  # the one row that carries it
    messages = [f"{e}\n{e!r}" for e in errors]

    assert _leaks("\n".join(reprs + messages) + caplog.text, secrets_dsn) == []
    slow = [r for r in caplog.records if r.getMessage().startswith("slow query ")]
    assert len(slow) >= len(errors) + 8  # the slow-query log saw every statement
    rows = await snapshot(db)
    assert [table for table, text in rows.items() if _HASH in text] == ["users"]


async def test_an_unreachable_database_names_no_password(secrets_dsn: str) -> None:
    missing = with_database(secrets_dsn, "no_such_database_x")
    with pytest.raises(Unavailable) as raised:
        await etlstore.connect(missing, connect_timeout=2)
    assert "no_such_database_x" in str(raised.value)
    assert _leaks(f"{raised.value}\n{raised.value!r}", secrets_dsn) == []


async def test_pg_stat_statements_holds_no_value(db: etlstore.Database, secrets_dsn: str) -> None:
    if not await db.fetchval("SELECT to_regclass('pg_stat_statements') IS NOT NULL"):
        await db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    name = f"bob-{uuid.uuid4().hex[:8]}"
    await users.create_user(db, username=name, email=f"{name}@example.com", password_hash=_HASH)
    texts = await db.fetchval(
        "SELECT string_agg(query, E'\\n') FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    assert "INSERT INTO users" in texts
    assert _leaks(texts, secrets_dsn) == []


def _structs_with_password_hash(tp: object) -> set[str]:
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return {tp.__name__} if "password_hash" in tp.__struct_fields__ else set()
    return set().union(*(_structs_with_password_hash(a) for a in typing.get_args(tp)))


def test_only_the_credentials_query_returns_password_hash() -> None:
    """Its row shows the hash in repr (msgspec has no per-field repr switch): keep it the one."""
    returning = {
        name: found
        for name, function in query_functions()
        if (found := _structs_with_password_hash(typing.get_type_hints(function)["return"]))
    }
    assert returning == {
        "users.get_user_credentials_by_username": {"GetUserCredentialsByUsernameRow"}
    }


async def test_a_logged_traceback_of_a_failed_write_holds_no_value(
    db: etlstore.Database, secrets_dsn: str
) -> None:
    failed = await _raised(
        users.create_user(db, username="carol", email="no-at-sign", password_hash=_HASH)
    )
    assert _leaks("".join(traceback.format_exception(failed)), secrets_dsn) == []
