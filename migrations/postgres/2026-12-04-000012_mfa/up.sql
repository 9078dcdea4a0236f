-- Second factors: a TOTP factor per user (its secret sealed under the
-- service's key), recovery codes (digests), and sign-ins waiting for their
-- second step (token digests).
ALTER TABLE users ADD COLUMN mfa_enabled BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE totp_factors (
    user_id UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    confirmed_at TIMESTAMPTZ,
    -- The last time step whose code was accepted: a code works once.
    last_step BIGINT
);

CREATE TABLE recovery_codes (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_digest BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ
);

CREATE UNIQUE INDEX recovery_codes_code_digest_key ON recovery_codes (code_digest);
CREATE INDEX recovery_codes_user_id_idx ON recovery_codes (user_id);

CREATE TABLE mfa_challenges (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_digest BYTEA NOT NULL,
    method TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    used_at TIMESTAMPTZ
);

CREATE UNIQUE INDEX mfa_challenges_token_digest_key ON mfa_challenges (token_digest);
CREATE INDEX mfa_challenges_expires_at_idx ON mfa_challenges (expires_at);
