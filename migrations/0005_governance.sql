-- Governance: the audit log of every change to definitions and access control.
-- Plain CREATE INDEX on a new table: see 0001.
-- depends: 0001_access

-- Fail fast instead of queueing behind long transactions (and blocking everyone queued behind us).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The log outlives the accounts it names; actor keeps the name.
    actor_user_id uuid REFERENCES users (id) ON DELETE SET NULL,
    actor text NOT NULL CONSTRAINT audit_log_actor_check CHECK (actor <> ''),
    action text NOT NULL CONSTRAINT audit_log_action_check CHECK (action <> ''),
    entity_type text NOT NULL CONSTRAINT audit_log_entity_type_check CHECK (entity_type <> ''),
    entity_id text NOT NULL,
    before jsonb,
    after jsonb,
    at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_log_before_or_after_check CHECK (before IS NOT NULL OR after IS NOT NULL)
);
COMMENT ON TABLE audit_log IS 'Who changed what and when: one row per change to a definition or to access control. Append-only.';
COMMENT ON COLUMN audit_log.actor_user_id IS 'The user who made the change; NULL for the system or a deleted user.';
COMMENT ON COLUMN audit_log.actor IS 'Who made the change, as shown to people: a username, or system.';
COMMENT ON COLUMN audit_log.action IS 'What was done, e.g. create, update, delete, grant, revoke, restore.';
COMMENT ON COLUMN audit_log.entity_type IS 'Table of the changed entity, e.g. pipelines or user_roles.';
COMMENT ON COLUMN audit_log.entity_id IS 'Id of the changed entity as text (a uuid, or user_id:role_id for a link).';
COMMENT ON COLUMN audit_log.before IS 'The entity before the change; NULL when it was created.';
COMMENT ON COLUMN audit_log.after IS 'The entity after the change; NULL when it was deleted.';
COMMENT ON COLUMN audit_log.at IS 'When the change was made.';
-- The history of one entity, newest first; id breaks ties on `at` for keyset pages.
CREATE INDEX audit_log_entity_type_entity_id_at_id_idx
    ON audit_log (entity_type, entity_id, at DESC, id DESC);
-- What one user did, newest first (and the actor_user_id foreign key).
CREATE INDEX audit_log_actor_user_id_at_id_idx ON audit_log (actor_user_id, at DESC, id DESC);
-- Everything over a time window in keyset pages; also the retention scan by age.
CREATE INDEX audit_log_at_id_idx ON audit_log (at, id);
