-- Provider accounts (GitHub, LinkedIn) linked to users.
CREATE TABLE oauth_identities (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider TEXT NOT NULL CHECK (provider IN ('github', 'linkedin')),
    subject TEXT NOT NULL,
    email TEXT,
    email_verified INTEGER NOT NULL CHECK (email_verified IN (0, 1)),
    created_at TEXT NOT NULL
) STRICT;

CREATE UNIQUE INDEX oauth_identities_provider_subject_key ON oauth_identities (provider, subject);
CREATE INDEX oauth_identities_user_id_idx ON oauth_identities (user_id);
