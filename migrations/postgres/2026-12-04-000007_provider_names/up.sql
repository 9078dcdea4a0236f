-- The provider is data: any configured name (github, linkedin, google, an
-- OpenID Connect provider's name), checked for its form, not against a list.
ALTER TABLE oauth_identities DROP CONSTRAINT oauth_identities_provider_check;
ALTER TABLE oauth_identities ADD CONSTRAINT oauth_identities_provider_name
    CHECK (provider ~ '^[a-z0-9][a-z0-9_-]{0,31}$');
