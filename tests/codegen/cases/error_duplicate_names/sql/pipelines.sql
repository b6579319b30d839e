-- name: get_thing(id)^
SELECT id, name FROM pipelines WHERE id = :id;
