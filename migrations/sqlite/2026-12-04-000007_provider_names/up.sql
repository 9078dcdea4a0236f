-- The provider is data: any configured name (github, linkedin, google, an
-- OpenID Connect provider's name), checked for its form, not against a list.
-- SQLite cannot drop a CHECK, so the table is rebuilt; nothing references it.
CREATE TABLE oauth_identities_new (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider TEXT NOT NULL CHECK (
        length(provider) BETWEEN 1 AND 32 AND provider NOT GLOB '*[^a-z0-9_-]*'
    ),
    subject TEXT NOT NULL,
    email TEXT,
    email_verified INTEGER NOT NULL CHECK (email_verified IN (0, 1)),
    created_at TEXT NOT NULL
) STRICT;

INSERT INTO oauth_identities_new (id, user_id, provider, subject, email, email_verified, created_at)
SELECT id, user_id, provider, subject, email, email_verified, created_at FROM oauth_identities;

DROP TABLE oauth_identities;
ALTER TABLE oauth_identities_new RENAME TO oauth_identities;

CREATE UNIQUE INDEX oauth_identities_provider_subject_key ON oauth_identities (provider, subject);
CREATE INDEX oauth_identities_user_id_idx ON oauth_identities (user_id);
