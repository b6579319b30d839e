-- Identity and access: users, roles, permissions and the links between them.
-- password_hash is selected by get_user_credentials_by_username only (login verification).
-- Keyset pages: pass the last row's sort key as `after_*`, or None for the first page.

-- name: get_user(id)^
-- A user by id, without the password hash.
SELECT id, username, email, is_active, created_at, updated_at
FROM users
WHERE id = :id;

-- name: get_user_by_username(username)^
-- A user by username, regardless of case, without the password hash.
SELECT id, username, email, is_active, created_at, updated_at
FROM users
WHERE lower(username) = lower(:username);

-- name: get_user_by_email(email)^
-- A user by email address, regardless of case, without the password hash.
SELECT id, username, email, is_active, created_at, updated_at
FROM users
WHERE lower(email) = lower(:email);

-- name: get_user_credentials_by_username(username)^
-- What a login check needs: the only query that returns password_hash.
--
-- The caller verifies the hash and refuses inactive users.
SELECT id, username, password_hash, is_active
FROM users
WHERE lower(username) = lower(:username);

-- name: list_users(after_username, limit)
-- A page of users sorted by username (case-insensitive), without password hashes.
--
-- after_username: the last username of the previous page, None for the first page.
-- @nullable after_username
SELECT id, username, email, is_active, created_at, updated_at
FROM users
WHERE lower(username) > lower(coalesce(:after_username::text, ''))
ORDER BY lower(username)
LIMIT :limit;

-- name: create_user(username, email, password_hash)<!
-- Add a user; a username or email already taken (in any case) is a Conflict.
INSERT INTO users (username, email, password_hash)
VALUES (:username, :email, :password_hash)
RETURNING id, username, email, is_active, created_at, updated_at;

-- name: update_user(id, username, email, is_active)<!
-- Replace a user's profile fields; None when there is no such user.
UPDATE users
SET username = :username, email = :email, is_active = :is_active
WHERE id = :id
RETURNING id, username, email, is_active, created_at, updated_at;

-- name: update_user_password(id, password_hash)!
-- Replace a user's password hash; returns 1, or 0 when there is no such user.
UPDATE users SET password_hash = :password_hash WHERE id = :id;

-- name: delete_user(id)<!
-- Remove a user and their role grants; None when there is no such user.
DELETE FROM users
WHERE id = :id
RETURNING id, username, email, is_active, created_at, updated_at;

-- name: get_role(id)^
-- A role by id.
SELECT id, name, description, created_at, updated_at FROM roles WHERE id = :id;

-- name: get_role_by_name(name)^
-- A role by its unique name.
SELECT id, name, description, created_at, updated_at FROM roles WHERE name = :name;

-- name: list_roles(after_name, limit)
-- A page of roles sorted by name; after_name None for the first page.
-- @nullable after_name
SELECT id, name, description, created_at, updated_at
FROM roles
WHERE name > coalesce(:after_name::text, '')
ORDER BY name
LIMIT :limit;

-- name: create_role(name, description)<!
-- Add a role; a name already taken is a Conflict.
INSERT INTO roles (name, description)
VALUES (:name, :description)
RETURNING id, name, description, created_at, updated_at;

-- name: update_role(id, name, description)<!
-- Rename or redescribe a role; None when there is no such role.
UPDATE roles SET name = :name, description = :description
WHERE id = :id
RETURNING id, name, description, created_at, updated_at;

-- name: delete_role(id)<!
-- Remove a role and its grants; None when there is no such role.
DELETE FROM roles WHERE id = :id
RETURNING id, name, description, created_at, updated_at;

-- name: get_permission(id)^
-- A permission by id.
SELECT id, code, description, created_at, updated_at FROM permissions WHERE id = :id;

-- name: get_permission_by_code(code)^
-- A permission by its unique code (e.g. pipeline:run).
SELECT id, code, description, created_at, updated_at FROM permissions WHERE code = :code;

-- name: list_permissions(after_code, limit)
-- A page of permissions sorted by code; after_code None for the first page.
-- @nullable after_code
SELECT id, code, description, created_at, updated_at
FROM permissions
WHERE code > coalesce(:after_code::text, '')
ORDER BY code
LIMIT :limit;

-- name: create_permission(code, description)<!
-- Add a permission; a code taken is a Conflict, a malformed code a CheckViolation.
INSERT INTO permissions (code, description)
VALUES (:code, :description)
RETURNING id, code, description, created_at, updated_at;

-- name: update_permission(id, code, description)<!
-- Change a permission's code or description; None when there is no such permission.
UPDATE permissions SET code = :code, description = :description
WHERE id = :id
RETURNING id, code, description, created_at, updated_at;

-- name: delete_permission(id)<!
-- Remove a permission from every role; None when there is no such permission.
DELETE FROM permissions WHERE id = :id
RETURNING id, code, description, created_at, updated_at;

-- name: grant_role_to_user(user_id, role_id)<!
-- Give a user a role; None when they already held it. Unknown ids are an InvalidReference.
INSERT INTO user_roles (user_id, role_id)
VALUES (:user_id, :role_id)
ON CONFLICT (user_id, role_id) DO NOTHING
RETURNING user_id, role_id, granted_at;

-- name: revoke_role_from_user(user_id, role_id)!
-- Take a role from a user; returns 1, or 0 when they did not hold it.
DELETE FROM user_roles WHERE user_id = :user_id AND role_id = :role_id;

-- name: list_user_roles(user_id)
-- @vet allow unbounded: a user holds a handful of roles
-- The roles a user holds, sorted by name.
SELECT r.id, r.name, r.description, ur.granted_at
FROM user_roles AS ur
JOIN roles AS r ON r.id = ur.role_id
WHERE ur.user_id = :user_id
ORDER BY r.name;

-- name: list_role_users(role_id, after_user_id, limit)
-- A page of the users holding a role, in user id order; after_user_id None for the first page.
-- @nullable after_user_id
SELECT u.id, u.username, u.email, u.is_active, ur.granted_at
FROM user_roles AS ur
JOIN users AS u ON u.id = ur.user_id
WHERE ur.role_id = :role_id
  AND ur.user_id > coalesce(:after_user_id::uuid, '00000000-0000-0000-0000-000000000000')
ORDER BY ur.user_id
LIMIT :limit;

-- name: grant_permission_to_role(role_id, permission_id)<!
-- Let a role do something; None when it already could. Unknown ids are an InvalidReference.
INSERT INTO role_permissions (role_id, permission_id)
VALUES (:role_id, :permission_id)
ON CONFLICT (role_id, permission_id) DO NOTHING
RETURNING role_id, permission_id, granted_at;

-- name: revoke_permission_from_role(role_id, permission_id)!
-- Stop a role from doing something; returns 1, or 0 when it could not.
DELETE FROM role_permissions WHERE role_id = :role_id AND permission_id = :permission_id;

-- name: list_role_permissions(role_id)
-- The permissions a role grants, sorted by code.
SELECT p.id, p.code, p.description, rp.granted_at
FROM role_permissions AS rp
JOIN permissions AS p ON p.id = rp.permission_id
WHERE rp.role_id = :role_id
ORDER BY p.code;

-- name: list_user_permissions(user_id)
-- @vet allow unbounded: a user's permissions through roles: bounded by the permission catalog
-- A user's effective permissions through all their roles, each once, sorted by code.
SELECT p.id, p.code, p.description
FROM permissions AS p
WHERE p.id IN (
    SELECT rp.permission_id
    FROM user_roles AS ur
    JOIN role_permissions AS rp ON rp.role_id = ur.role_id
    WHERE ur.user_id = :user_id
)
ORDER BY p.code;

-- name: check_user_permission(user_id, code)$
-- Whether an active user holds a permission (by code) through any of their roles.
SELECT EXISTS (
    SELECT 1
    FROM users AS u
    JOIN user_roles AS ur ON ur.user_id = u.id
    JOIN role_permissions AS rp ON rp.role_id = ur.role_id
    JOIN permissions AS p ON p.id = rp.permission_id
    WHERE u.id = :user_id AND u.is_active AND p.code = :code
) AS allowed;
