-- One session per sign-in: an absolute end (expires_at), an idle end counted
-- from last_used_at, and ended_at once it is ended. Its refresh tokens are
-- kept as digests; a spent one is kept (spent_at) to recognise its reuse.
CREATE TABLE sessions (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    auth_time TIMESTAMPTZ NOT NULL,
    ip TEXT,
    user_agent TEXT,
    method TEXT NOT NULL,
    mfa BOOLEAN NOT NULL,
    ended_at TIMESTAMPTZ
);

-- A user's live sessions, newest first.
CREATE INDEX sessions_user_id_created_at_idx ON sessions (user_id, created_at);
-- The purge of ended and expired sessions.
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
CREATE INDEX sessions_ended_at_idx ON sessions (ended_at) WHERE ended_at IS NOT NULL;

CREATE TABLE refresh_tokens (
    digest BYTEA PRIMARY KEY,
    session_id UUID NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at TIMESTAMPTZ NOT NULL,
    spent_at TIMESTAMPTZ
);

CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
