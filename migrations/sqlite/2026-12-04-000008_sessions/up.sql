-- One session per sign-in: an absolute end (expires_at), an idle end counted
-- from last_used_at, and ended_at once it is ended. Its refresh tokens are
-- kept as digests; a spent one is kept (spent_at) to recognise its reuse.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    last_used_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    auth_time TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    method TEXT NOT NULL,
    mfa INTEGER NOT NULL CHECK (mfa IN (0, 1)),
    ended_at TEXT
) STRICT;

-- A user's live sessions, newest first.
CREATE INDEX sessions_user_id_created_at_idx ON sessions (user_id, created_at);
-- The purge of ended and expired sessions.
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
CREATE INDEX sessions_ended_at_idx ON sessions (ended_at) WHERE ended_at IS NOT NULL;

CREATE TABLE refresh_tokens (
    digest BLOB PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at TEXT NOT NULL,
    spent_at TEXT
) STRICT;

CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
