-- name: list_pipelines()
SELECT *
FROM pipelines;

-- name: create_plugin(name, plugin_type)<!
INSERT INTO plugins (name, plugin_type) VALUES (:name, :plugin_type)
RETURNING *;
