-- Dataclasses: schemas of the records that flow between the components of jobs.
-- Keyset pages: pass the last row's sort key as `after_*`, or None for the first page.

-- name: get_dataclass(id)^
-- A dataclass by id.
SELECT id, name, dataclass_type, schema_definition, validation_rules, created_at, updated_at
FROM dataclasses
WHERE id = :id;

-- name: get_dataclass_by_name(name)^
-- A dataclass by its unique name.
SELECT id, name, dataclass_type, schema_definition, validation_rules, created_at, updated_at
FROM dataclasses
WHERE name = :name;

-- name: list_dataclasses(after_name, limit)
-- A page of dataclasses sorted by name; after_name None for the first page.
-- @nullable after_name
SELECT id, name, dataclass_type, schema_definition, validation_rules, created_at, updated_at
FROM dataclasses
WHERE name > coalesce(:after_name::text, '')
ORDER BY name
LIMIT :limit;

-- name: create_dataclass(name, dataclass_type, schema_definition, validation_rules)<!
-- Add a dataclass; a name already taken is a Conflict.
INSERT INTO dataclasses (name, dataclass_type, schema_definition, validation_rules)
VALUES (:name, :dataclass_type, :schema_definition, :validation_rules)
RETURNING id, name, dataclass_type, schema_definition, validation_rules, created_at, updated_at;

-- name: update_dataclass(id, name, dataclass_type, schema_definition, validation_rules)<!
-- Replace a dataclass's definition; None when there is no such dataclass.
UPDATE dataclasses
SET name = :name, dataclass_type = :dataclass_type, schema_definition = :schema_definition,
    validation_rules = :validation_rules
WHERE id = :id
RETURNING id, name, dataclass_type, schema_definition, validation_rules, created_at, updated_at;

-- name: delete_dataclass(id)<!
-- Remove a dataclass; None when there is no such dataclass.
--
-- A dataclass that components still use cannot be deleted (the foreign key restricts it).
DELETE FROM dataclasses
WHERE id = :id
RETURNING id, name, dataclass_type, schema_definition, validation_rules, created_at, updated_at;
