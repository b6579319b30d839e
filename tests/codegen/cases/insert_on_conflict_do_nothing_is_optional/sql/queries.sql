-- name: create_plugin_if_absent(name, plugin_type, variant)<!
-- @nullable variant
INSERT INTO plugins (name, plugin_type, variant)
VALUES (:name, :plugin_type, :variant)
ON CONFLICT DO NOTHING
RETURNING id;
