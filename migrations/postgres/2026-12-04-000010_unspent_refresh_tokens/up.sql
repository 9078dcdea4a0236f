-- A session's unspent refresh token (one at a time), found without walking
-- the spent ones it keeps for reuse detection: a long session refreshed
-- every few minutes holds thousands of them.
CREATE INDEX refresh_tokens_unspent_idx ON refresh_tokens (session_id) WHERE spent_at IS NULL;
