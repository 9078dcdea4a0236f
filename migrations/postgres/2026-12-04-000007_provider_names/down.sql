-- Back to the two providers of earlier versions. Fails (and changes nothing)
-- while an identity of another provider is stored: delete those first.
ALTER TABLE oauth_identities DROP CONSTRAINT oauth_identities_provider_name;
ALTER TABLE oauth_identities ADD CONSTRAINT oauth_identities_provider_check
    CHECK (provider IN ('github', 'linkedin'));
