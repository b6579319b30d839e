-- The plugin catalog: extractors, loaders, transformers and utilities that pipeline steps run.
-- Keyset pages: pass the last row's sort key as `after_*`, or None for the first page.

-- name: get_plugin(id)^
-- A plugin by id.
SELECT id, name, plugin_type, variant, version, namespace, settings_schema, is_enabled,
       created_at, updated_at
FROM plugins
WHERE id = :id;

-- name: get_plugin_by_name(name, variant)^
-- A plugin by its unique (name, variant); variant is 'default' unless a vendor variant is wanted.
SELECT id, name, plugin_type, variant, version, namespace, settings_schema, is_enabled,
       created_at, updated_at
FROM plugins
WHERE name = :name AND variant = :variant;

-- name: list_plugins(after_name, after_variant, limit)
-- A page of plugins sorted by (name, variant); both cursors None for the first page.
-- @nullable after_name
-- @nullable after_variant
SELECT id, name, plugin_type, variant, version, namespace, settings_schema, is_enabled,
       created_at, updated_at
FROM plugins
WHERE (name, variant) > (coalesce(:after_name::text, ''), coalesce(:after_variant::text, ''))
ORDER BY name, variant
LIMIT :limit;

-- name: list_plugins_by_type(plugin_type, after_name, after_variant, limit)
-- A page of the plugins of one type sorted by (name, variant); cursors None for the first page.
-- @nullable after_name
-- @nullable after_variant
SELECT id, name, plugin_type, variant, version, namespace, settings_schema, is_enabled,
       created_at, updated_at
FROM plugins
WHERE plugin_type = :plugin_type
  AND name >= coalesce(:after_name::text, '')
  AND (name, variant) > (coalesce(:after_name::text, ''), coalesce(:after_variant::text, ''))
ORDER BY name, variant
LIMIT :limit;

-- name: create_plugin(name, plugin_type, variant, version, namespace, settings_schema)<!
-- Register a plugin; a (name, variant) already registered is a Conflict.
INSERT INTO plugins (name, plugin_type, variant, version, namespace, settings_schema)
VALUES (:name, :plugin_type, :variant, :version, :namespace, :settings_schema)
RETURNING id, name, plugin_type, variant, version, namespace, settings_schema, is_enabled,
          created_at, updated_at;

-- name: update_plugin(id, version, namespace, settings_schema, is_enabled)<!
-- Upgrade or reconfigure a plugin (name, type and variant stay); None when there is no such plugin.
UPDATE plugins
SET version = :version, namespace = :namespace, settings_schema = :settings_schema,
    is_enabled = :is_enabled
WHERE id = :id
RETURNING id, name, plugin_type, variant, version, namespace, settings_schema, is_enabled,
          created_at, updated_at;

-- name: delete_plugin(id)<!
-- Remove a plugin; None when there is no such plugin.
--
-- A plugin that steps still use cannot be deleted (the foreign key restricts it): disable it.
DELETE FROM plugins
WHERE id = :id
RETURNING id, name, plugin_type, variant, version, namespace, settings_schema, is_enabled,
          created_at, updated_at;

-- name: count_pipeline_steps_by_plugin(plugin_id)$
-- How many pipeline steps run a plugin (0 means it can be deleted).
SELECT count(*) FROM pipeline_steps WHERE plugin_id = :plugin_id;
