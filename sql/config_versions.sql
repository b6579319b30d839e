-- Configuration versions: immutable, numbered snapshots of a pipeline's or job's whole
-- configuration. Rows are never updated or deleted by the application (a trigger refuses updates,
-- and etlstore_app may only SELECT and INSERT).

-- name: create_config_version(entity_type, entity_id, configuration, created_by, actor)<!
-- Write the next version (latest + 1, or 1) of an entity's configuration.
--
-- Take lock_pipeline / lock_job first in the same transaction: two writers racing for the same
-- number would otherwise make the second fail with a Conflict
-- (config_versions_entity_version_key).
-- @nullable created_by
INSERT INTO config_versions (entity_type, entity_id, version, configuration, created_by, actor)
VALUES (
    :entity_type,
    :entity_id,
    (SELECT coalesce(max(v.version), 0) + 1
     FROM config_versions AS v
     WHERE v.entity_type = :entity_type AND v.entity_id = :entity_id),
    :configuration,
    :created_by,
    :actor
)
RETURNING id, entity_type, entity_id, version, configuration, created_by, actor, created_at;

-- name: get_config_version(id)^
-- A configuration version by id.
SELECT id, entity_type, entity_id, version, configuration, created_by, actor, created_at
FROM config_versions
WHERE id = :id;

-- name: get_config_version_by_number(entity_type, entity_id, version)^
-- Version number `version` of an entity's configuration (what a restore reads).
SELECT id, entity_type, entity_id, version, configuration, created_by, actor, created_at
FROM config_versions
WHERE entity_type = :entity_type AND entity_id = :entity_id AND version = :version;

-- name: get_latest_config_version(entity_type, entity_id)^
-- The newest version of an entity's configuration; None when it has none.
SELECT id, entity_type, entity_id, version, configuration, created_by, actor, created_at
FROM config_versions
WHERE entity_type = :entity_type AND entity_id = :entity_id
ORDER BY version DESC
LIMIT 1;

-- name: list_config_versions(entity_type, entity_id, before_version, limit)
-- A page of an entity's versions, newest first, without the configurations.
--
-- before_version: the last version of the previous page, None for the first page.
-- @nullable before_version
SELECT id, version, created_by, actor, created_at
FROM config_versions
WHERE entity_type = :entity_type AND entity_id = :entity_id
  AND version < coalesce(:before_version::integer, 2147483647)
ORDER BY version DESC
LIMIT :limit;
