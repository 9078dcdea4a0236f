-- Provider accounts (GitHub, LinkedIn) linked to users.
CREATE TABLE oauth_identities (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider TEXT NOT NULL CHECK (provider IN ('github', 'linkedin')),
    subject TEXT NOT NULL,
    email TEXT,
    email_verified BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX oauth_identities_provider_subject_key ON oauth_identities (provider, subject);
CREATE INDEX oauth_identities_user_id_idx ON oauth_identities (user_id);
