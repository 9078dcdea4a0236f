-- Forgot-password requests wait here, as they arrived, for the outbox worker:
-- the request itself does one insert whatever the email, so its timing
-- tells nothing; the worker looks the email up, issues the token and queues
-- the email. Who asked is kept for the audit event.
CREATE TABLE password_reset_requests (
    id UUID PRIMARY KEY,
    email TEXT NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    ip TEXT,
    user_agent TEXT,
    request_id TEXT
);

CREATE INDEX password_reset_requests_due_idx ON password_reset_requests (next_attempt_at);

-- Counting a user's reset emails of the last hour.
CREATE INDEX password_resets_user_created_idx ON password_resets (user_id, created_at);

-- OAuth `state` values already used, until they would have expired anyway:
-- a state is accepted once, by whichever instance sees it first.
CREATE TABLE oauth_spent_states (
    nonce TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX oauth_spent_states_expires_at_idx ON oauth_spent_states (expires_at);
