-- Whether a user proved they own their address (a verification link, a
-- password reset, or a provider that verified it), and the verification
-- links (digests only).
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;

-- Accounts that exist already: one without a password was created by a
-- provider that verified the address, one with a linked provider was linked
-- by a provider-verified address, and administrators were created by the
-- operator. Password accounts start unverified.
UPDATE users SET email_verified = TRUE
WHERE password_hash IS NULL
   OR role = 'ADMIN'
   OR EXISTS (SELECT 1 FROM oauth_identities WHERE oauth_identities.user_id = users.id);

CREATE TABLE email_verifications (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_digest BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ
);

CREATE UNIQUE INDEX email_verifications_token_digest_key ON email_verifications (token_digest);
-- The hourly budget counts a user's recent links; voiding finds the unused ones.
CREATE INDEX email_verifications_user_created_idx ON email_verifications (user_id, created_at);
