-- Users and the token blacklist. UUIDs are stored as lower-case hyphenated
-- text; timestamps as UTC text (whole seconds where the store compares them,
-- so that text order is time order).
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    full_name TEXT,
    password_hash TEXT,
    role TEXT NOT NULL CHECK (role IN ('USER', 'ADMIN')),
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    session_version INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;

CREATE INDEX revoked_tokens_expires_at_idx ON revoked_tokens (expires_at);
