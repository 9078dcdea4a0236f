-- Back to the two providers of earlier versions. Fails (and changes nothing)
-- while an identity of another provider is stored: delete those first.
CREATE TABLE oauth_identities_old (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider TEXT NOT NULL CHECK (provider IN ('github', 'linkedin')),
    subject TEXT NOT NULL,
    email TEXT,
    email_verified INTEGER NOT NULL CHECK (email_verified IN (0, 1)),
    created_at TEXT NOT NULL
) STRICT;

INSERT INTO oauth_identities_old (id, user_id, provider, subject, email, email_verified, created_at)
SELECT id, user_id, provider, subject, email, email_verified, created_at FROM oauth_identities;

DROP TABLE oauth_identities;
ALTER TABLE oauth_identities_old RENAME TO oauth_identities;

CREATE UNIQUE INDEX oauth_identities_provider_subject_key ON oauth_identities (provider, subject);
CREATE INDEX oauth_identities_user_id_idx ON oauth_identities (user_id);
