"""Fixtures of the domain tests: a Database on the shared migrated database, emptied per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import etlstore
from etlstore import Database

# Every application table: TRUNCATE ... CASCADE empties them in one statement.
_TRUNCATE = (
    "TRUNCATE users, roles, permissions, user_roles, role_permissions, plugins, dataclasses,"
    " pipelines, pipeline_steps, jobs, tags, job_tags, components, component_dependencies,"
    " config_versions, pipeline_executions, step_executions, job_executions, component_metrics,"
    " events, audit_log RESTART IDENTITY CASCADE"
)


@pytest.fixture(scope="session")
async def db(migrated_database: str) -> AsyncIterator[Database]:
    """A pool on the session's migrated database."""
    async with etlstore.connect(migrated_database, min_size=1, max_size=20) as database:
        yield database


@pytest.fixture(autouse=True)
async def _empty_tables(db: Database) -> AsyncIterator[None]:
    """Each test starts from empty tables and leaves them empty for the tests after it."""
    await db.execute(_TRUNCATE)
    yield
    await db.execute(_TRUNCATE)
