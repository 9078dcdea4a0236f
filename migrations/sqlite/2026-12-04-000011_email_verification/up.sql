-- Whether a user proved they own their address (a verification link, a
-- password reset, or a provider that verified it), and the verification
-- links (digests only).
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1));

-- Accounts that exist already: one without a password was created by a
-- provider that verified the address, one with a linked provider was linked
-- by a provider-verified address, and administrators were created by the
-- operator. Password accounts start unverified.
UPDATE users SET email_verified = 1
WHERE password_hash IS NULL
   OR role = 'ADMIN'
   OR EXISTS (SELECT 1 FROM oauth_identities WHERE oauth_identities.user_id = users.id);

CREATE TABLE email_verifications (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_digest BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
) STRICT;

CREATE UNIQUE INDEX email_verifications_token_digest_key ON email_verifications (token_digest);
-- The hourly budget counts a user's recent links; voiding finds the unused ones.
CREATE INDEX email_verifications_user_created_idx ON email_verifications (user_id, created_at);
