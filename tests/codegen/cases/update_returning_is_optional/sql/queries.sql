-- name: rename_pipeline(id, name)<!
UPDATE pipelines SET name = :name WHERE id = :id RETURNING id, name;
