-- The asymmetric keys access tokens are signed with, shared by every
-- instance. Rows are only ever added: a key's state (next, current, retired)
-- follows from activates_at. The private key is stored encrypted under
-- AUTH_KEY_ENCRYPTION_KEY (AES-256-GCM); the public one as its JWK.
-- generation is unique so that of two instances adding a key at the same
-- instant exactly one succeeds.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    generation BIGINT NOT NULL UNIQUE,
    algorithm TEXT NOT NULL CHECK (algorithm IN ('ES256', 'EdDSA')),
    public_jwk TEXT NOT NULL,
    sealed_private BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    activates_at TIMESTAMPTZ NOT NULL
);
