-- name: all_names()
SELECT name, 'pipeline' AS kind FROM pipelines
UNION ALL
SELECT name, 'plugin' AS kind FROM plugins
ORDER BY name;
