-- API keys (only a SHA-256 digest of each key is kept) and the example resource.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    environment TEXT NOT NULL CHECK (environment IN ('live', 'test')),
    key_digest BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    last_used_at TEXT,
    usage_count INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE UNIQUE INDEX api_keys_key_digest_key ON api_keys (key_digest);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id, created_at DESC);

CREATE TABLE projects (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    environment TEXT NOT NULL CHECK (environment IN ('live', 'test')),
    created_at TEXT NOT NULL
) STRICT;

CREATE INDEX projects_owner_idx ON projects (user_id, environment, created_at DESC);
CREATE INDEX users_created_at_idx ON users (created_at, id);
