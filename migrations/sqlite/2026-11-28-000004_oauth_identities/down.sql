DROP TABLE oauth_identities;
