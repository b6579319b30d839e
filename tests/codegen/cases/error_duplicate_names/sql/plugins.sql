-- name: get_thing(id)^
SELECT id, name FROM plugins WHERE id = :id;
