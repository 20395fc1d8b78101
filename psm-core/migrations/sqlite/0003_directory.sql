-- The user directory: gateway users, their SSH keys, roles, and the targets each role may reach.
CREATE TABLE directory_users (
    name          TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT,
    totp_secret   TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE directory_user_keys (
    user_name TEXT NOT NULL REFERENCES directory_users (name) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    comment   TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (user_name, key)
) STRICT;

CREATE TABLE directory_user_roles (
    user_name TEXT NOT NULL REFERENCES directory_users (name) ON DELETE CASCADE,
    role      TEXT NOT NULL,
    PRIMARY KEY (user_name, role)
) STRICT;

CREATE TABLE directory_role_targets (
    role   TEXT NOT NULL,
    target TEXT NOT NULL,
    PRIMARY KEY (role, target)
) STRICT;
