-- Second factors: a TOTP factor per user (its secret sealed under the
-- service's key), recovery codes (digests), and sign-ins waiting for their
-- second step (token digests).
ALTER TABLE users ADD COLUMN mfa_enabled INTEGER NOT NULL DEFAULT 0 CHECK (mfa_enabled IN (0, 1));

CREATE TABLE totp_factors (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret BLOB NOT NULL,
    created_at TEXT NOT NULL,
    confirmed_at TEXT,
    -- The last time step whose code was accepted: a code works once.
    last_step INTEGER
) STRICT;

CREATE TABLE recovery_codes (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_digest BLOB NOT NULL,
    created_at TEXT NOT NULL,
    used_at TEXT
) STRICT;

CREATE UNIQUE INDEX recovery_codes_code_digest_key ON recovery_codes (code_digest);
CREATE INDEX recovery_codes_user_id_idx ON recovery_codes (user_id);

CREATE TABLE mfa_challenges (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_digest BLOB NOT NULL,
    method TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    used_at TEXT
) STRICT;

CREATE UNIQUE INDEX mfa_challenges_token_digest_key ON mfa_challenges (token_digest);
CREATE INDEX mfa_challenges_expires_at_idx ON mfa_challenges (expires_at);
