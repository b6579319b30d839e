-- The audit log: one append-only row per change to a definition or to access control.
-- Pages are newest first, keyed by (at, id): pass the last row's at and id as `before_*`,
-- or None for the first page.

-- name: create_audit_entry(actor_user_id, actor, action, entity_type, entity_id, before, after)<!
-- Record a change; before is None for a creation, after None for a deletion (not both).
-- @nullable actor_user_id
-- @nullable before
-- @nullable after
INSERT INTO audit_log (actor_user_id, actor, action, entity_type, entity_id, before, after)
VALUES (:actor_user_id, :actor, :action, :entity_type, :entity_id, :before, :after)
RETURNING id, actor_user_id, actor, action, entity_type, entity_id, before, after, at;

-- name: get_audit_entry(id)^
-- An audit entry by id.
SELECT id, actor_user_id, actor, action, entity_type, entity_id, before, after, at
FROM audit_log
WHERE id = :id;

-- name: list_audit_entries(before_at, before_id, limit)
-- A page of all changes, newest first.
-- @nullable before_at
-- @nullable before_id
SELECT id, actor_user_id, actor, action, entity_type, entity_id, before, after, at
FROM audit_log
WHERE at <= coalesce(:before_at::timestamptz, 'infinity')
  AND (at, id) < (coalesce(:before_at::timestamptz, 'infinity'),
                  coalesce(:before_id::bigint, 9223372036854775807))
ORDER BY at DESC, id DESC
LIMIT :limit;

-- name: list_audit_entries_for_entity(entity_type, entity_id, before_at, before_id, limit)
-- A page of the history of one entity (e.g. 'pipelines' and its id), newest first.
-- @nullable before_at
-- @nullable before_id
SELECT id, actor_user_id, actor, action, entity_type, entity_id, before, after, at
FROM audit_log
WHERE entity_type = :entity_type AND entity_id = :entity_id
  AND at <= coalesce(:before_at::timestamptz, 'infinity')
  AND (at, id) < (coalesce(:before_at::timestamptz, 'infinity'),
                  coalesce(:before_id::bigint, 9223372036854775807))
ORDER BY at DESC, id DESC
LIMIT :limit;

-- name: list_audit_entries_by_actor(actor_user_id, before_at, before_id, limit)
-- A page of what one user changed, newest first.
-- @nullable before_at
-- @nullable before_id
SELECT id, actor_user_id, actor, action, entity_type, entity_id, before, after, at
FROM audit_log
WHERE actor_user_id = :actor_user_id
  AND at <= coalesce(:before_at::timestamptz, 'infinity')
  AND (at, id) < (coalesce(:before_at::timestamptz, 'infinity'),
                  coalesce(:before_id::bigint, 9223372036854775807))
ORDER BY at DESC, id DESC
LIMIT :limit;
