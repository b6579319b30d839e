-- name: upsert_plugin(name, plugin_type, variant)<!
INSERT INTO plugins (name, plugin_type, variant)
VALUES (:name, :plugin_type, :variant)
ON CONFLICT (name, variant) DO UPDATE SET plugin_type = excluded.plugin_type
RETURNING id, plugin_type;
