"""sql/plugins.sql: the plugin catalog, unique per (name, variant), listed by (name, variant)."""

from __future__ import annotations

from uuid import uuid4

import pytest

from etlstore import Database
from etlstore.errors import CheckViolation, Conflict, InvalidReference
from etlstore.queries import pipelines, plugins
from etlstore.queries.models import Plugin, PluginType

from ._factories import make_pipeline, make_plugin, walk_pages


async def test_get_plugin_by_id_and_by_name_and_variant(db: Database) -> None:
    default = await make_plugin(db, "tap-s3")
    vendor = await make_plugin(db, "tap-s3", variant="acme")
    assert await plugins.get_plugin(db, id=vendor.id) == vendor
    assert await plugins.get_plugin_by_name(db, name="tap-s3", variant="default") == default
    assert await plugins.get_plugin_by_name(db, name="tap-s3", variant="other") is None
    assert await plugins.get_plugin(db, id=uuid4()) is None


async def test_a_name_and_variant_registered_twice_is_a_conflict_naming_both(
    db: Database,
) -> None:
    await make_plugin(db, "tap-s3")
    with pytest.raises(Conflict) as caught:
        await make_plugin(db, "tap-s3")
    assert caught.value.constraint == "plugins_name_variant_key"
    assert caught.value.columns == ("name", "variant")


async def test_an_empty_name_is_a_check_violation(db: Database) -> None:
    with pytest.raises(CheckViolation) as caught:
        await make_plugin(db, "")
    assert caught.value.constraint == "plugins_name_check"


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 10])
async def test_list_plugins_walks_every_plugin_once_by_name_then_variant(
    db: Database, limit: int
) -> None:
    for name, variant in [("b", "x"), ("a", "z"), ("b", "default"), ("a", "default")]:
        await make_plugin(db, name, variant=variant)

    async def page(last: Plugin | None) -> list[Plugin]:
        return await plugins.list_plugins(
            db,
            after_name=None if last is None else last.name,
            after_variant=None if last is None else last.variant,
            limit=limit,
        )

    walked = [(p.name, p.variant) for page_ in await walk_pages(page, limit) for p in page_]
    assert walked == [("a", "default"), ("a", "z"), ("b", "default"), ("b", "x")]


@pytest.mark.parametrize("limit", [1, 2, 5])
async def test_list_plugins_by_type_pages_only_that_type(db: Database, limit: int) -> None:
    await make_plugin(db, "target-pg", plugin_type=PluginType.LOADER)
    for name, variant in [("tap-b", "default"), ("tap-a", "y"), ("tap-a", "x")]:
        await make_plugin(db, name, variant=variant)

    async def page(last: Plugin | None) -> list[Plugin]:
        return await plugins.list_plugins_by_type(
            db,
            plugin_type=PluginType.EXTRACTOR,
            after_name=None if last is None else last.name,
            after_variant=None if last is None else last.variant,
            limit=limit,
        )

    walked = [(p.name, p.variant) for page_ in await walk_pages(page, limit) for p in page_]
    assert walked == [("tap-a", "x"), ("tap-a", "y"), ("tap-b", "default")]


async def test_update_plugin_keeps_identity_and_unknown_ids_return_none(db: Database) -> None:
    plugin = await make_plugin(db, "tap-s3")
    updated = await plugins.update_plugin(
        db, id=plugin.id, version="2.0", namespace="s3", settings_schema={"a": 1}, is_enabled=False
    )
    assert updated is not None
    assert (updated.name, updated.version, updated.settings_schema, updated.is_enabled) == (
        "tap-s3",
        "2.0",
        {"a": 1},
        False,
    )
    assert updated.updated_at >= plugin.updated_at
    assert (
        await plugins.update_plugin(
            db, id=uuid4(), version="2", namespace="n", settings_schema={}, is_enabled=True
        )
        is None
    )
    assert await plugins.delete_plugin(db, id=uuid4()) is None


async def test_count_pipeline_steps_by_plugin_counts_its_steps(db: Database) -> None:
    plugin = await make_plugin(db, "tap-s3")
    unused = await make_plugin(db, "tap-gcs")
    pipeline = await make_pipeline(db)
    for position in range(3):
        await pipelines.create_pipeline_step(
            db, pipeline_id=pipeline.id, position=position, plugin_id=plugin.id, configuration={}
        )
    assert await plugins.count_pipeline_steps_by_plugin(db, plugin_id=plugin.id) == 3
    assert await plugins.count_pipeline_steps_by_plugin(db, plugin_id=unused.id) == 0
    assert await plugins.delete_plugin(db, id=unused.id) == unused


async def test_deleting_a_plugin_that_steps_use_is_an_invalid_reference(db: Database) -> None:
    plugin = await make_plugin(db)
    pipeline = await make_pipeline(db)
    await pipelines.create_pipeline_step(
        db, pipeline_id=pipeline.id, position=0, plugin_id=plugin.id, configuration={}
    )
    with pytest.raises(InvalidReference) as caught:
        await plugins.delete_plugin(db, id=plugin.id)
    assert caught.value.constraint == "pipeline_steps_plugin_id_fkey"
    assert await plugins.get_plugin(db, id=plugin.id) == plugin
