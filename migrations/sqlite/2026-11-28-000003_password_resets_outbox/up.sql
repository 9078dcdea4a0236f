-- Password-reset tokens (digests only) and the durable email outbox.
CREATE TABLE password_resets (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_digest BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
) STRICT;

CREATE UNIQUE INDEX password_resets_token_digest_key ON password_resets (token_digest);
CREATE INDEX password_resets_unused_idx ON password_resets (user_id) WHERE used_at IS NULL;

-- Bodies are blanked once a message is sent or given up: they may hold a reset link.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT
) STRICT;

CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE status = 'pending';
