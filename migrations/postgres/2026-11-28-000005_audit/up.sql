-- Security events. No foreign key on user_id: the trail outlives what it is about.
-- Ids are UUIDv7, so ordering by id is ordering by time.
CREATE TABLE audit_events (
    id UUID PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    kind TEXT NOT NULL,
    user_id UUID,
    detail TEXT,
    ip TEXT,
    user_agent TEXT,
    request_id TEXT
);

CREATE INDEX audit_events_user_id_idx ON audit_events (user_id, id);
CREATE INDEX audit_events_kind_idx ON audit_events (kind, id);
CREATE INDEX audit_events_at_idx ON audit_events (at);

-- The addresses each API key was used from, to notice a new one.
CREATE TABLE api_key_addresses (
    key_id UUID NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    ip TEXT NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (key_id, ip)
);
