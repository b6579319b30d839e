"""The replica tests' pair (``tests/_replica_pair.py``) and a polling helper."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import pytest

from tests._replica_pair import Pair, replica_pair
from tests.conftest import MIGRATIONS

__all__ = ["Pair", "eventually"]


@pytest.fixture(scope="session")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """A migrated primary and a replica streaming from it."""
    with replica_pair(
        tmp_path_factory.mktemp("replicas"), migrations=MIGRATIONS, database="replicas"
    ) as started:
        yield started


async def eventually(check: Callable[[], Awaitable[bool]], *, within_s: float = 10.0) -> None:
    """Poll ``check`` every 20 ms until it holds; fail the test after ``within_s``."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + within_s
    while not await check():
        if loop.time() > give_up_at:
            pytest.fail(f"{getattr(check, '__name__', 'condition')} did not hold in {within_s} s")
        await asyncio.sleep(0.02)
