-- name: list_pipelines()
SELECT id,
       name,
       no_such_column
FROM pipelines;

-- name: get_plugin(id)^
SELECT id, name FROM plugins WHERE id = :id;
