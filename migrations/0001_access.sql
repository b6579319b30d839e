-- Identity and access control: users, roles, permissions and the many-to-many links between them,
-- plus the one trigger function that keeps every table's updated_at current.
--
-- Indexes: the schema is created empty, so plain CREATE INDEX inside yoyo's transaction is correct
-- (CREATE INDEX CONCURRENTLY cannot run in a transaction and buys nothing on an empty table). Later
-- migrations that index a populated table use CONCURRENTLY with `-- transactional: false`.

-- Fail fast instead of queueing behind long transactions (and blocking everyone queued behind us).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION set_updated_at() IS
    'BEFORE UPDATE row trigger: sets updated_at to the transaction time on every update.';

CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username text NOT NULL CONSTRAINT users_username_check CHECK (length(username) BETWEEN 1 AND 150),
    email text NOT NULL CONSTRAINT users_email_check CHECK (position('@' IN email) > 1),
    password_hash text NOT NULL,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE users IS 'People and service accounts that sign in to the platform.';
COMMENT ON COLUMN users.username IS 'Login name, unique regardless of case.';
COMMENT ON COLUMN users.email IS 'Contact address, unique regardless of case.';
COMMENT ON COLUMN users.password_hash IS 'Hash of the password (never the password); never returned by default queries, never logged.';
COMMENT ON COLUMN users.is_active IS 'False for a disabled account, which cannot sign in.';
-- Case-insensitive uniqueness without the citext extension; these also serve lookups and keyset
-- pages sorted by lower(username).
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE INDEX users_created_at_id_idx ON users (created_at, id);
CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE roles (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CONSTRAINT roles_name_key UNIQUE,
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE roles IS 'Named sets of permissions granted to users (e.g. admin, operator, viewer). @vet small: a deployment defines tens of roles.';
CREATE INDEX roles_created_at_id_idx ON roles (created_at, id);
CREATE TRIGGER roles_set_updated_at BEFORE UPDATE ON roles
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE permissions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code text NOT NULL CONSTRAINT permissions_code_key UNIQUE
        CONSTRAINT permissions_code_check CHECK (code ~ '^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$'),
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE permissions IS 'Actions a role may allow. @vet small: the permission codes are a fixed catalog of tens to hundreds.';
COMMENT ON COLUMN permissions.code IS 'Stable machine name, resource:action, e.g. pipeline:run.';
CREATE INDEX permissions_created_at_id_idx ON permissions (created_at, id);
CREATE TRIGGER permissions_set_updated_at BEFORE UPDATE ON permissions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Link rows mean nothing without both ends, so deleting a user, role or permission removes them.
CREATE TABLE user_roles (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    granted_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_roles_pkey PRIMARY KEY (user_id, role_id)
);
COMMENT ON TABLE user_roles IS 'Which roles each user holds.';
COMMENT ON COLUMN user_roles.granted_at IS 'When the role was granted to the user.';
CREATE INDEX user_roles_role_id_user_id_idx ON user_roles (role_id, user_id);

CREATE TABLE role_permissions (
    role_id uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission_id uuid NOT NULL REFERENCES permissions (id) ON DELETE CASCADE,
    granted_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT role_permissions_pkey PRIMARY KEY (role_id, permission_id)
);
COMMENT ON TABLE role_permissions IS 'Which permissions each role allows. @vet small: roles times permissions, a few thousand rows at most.';
COMMENT ON COLUMN role_permissions.granted_at IS 'When the permission was added to the role.';
CREATE INDEX role_permissions_permission_id_role_id_idx ON role_permissions (permission_id, role_id);
