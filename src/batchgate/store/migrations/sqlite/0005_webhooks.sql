-- Webhooks: the endpoints of a scope, and a durable outbox of events for them.
-- An event is written in the same transaction as the batch's move to a terminal status, with one
-- delivery row per endpoint of the batch's scope that listens to its type: a crash never loses
-- or doubles one. Workers lease due deliveries (lease_owner, lease_expires_at) to send them.
CREATE TABLE webhook_endpoints (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    owner        TEXT NOT NULL,
    on_behalf_of TEXT NOT NULL,
    url          TEXT NOT NULL,
    events       TEXT NOT NULL,
    secret       TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_by_scope ON webhook_endpoints (owner, on_behalf_of, seq);

CREATE TABLE webhook_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    batch_id   TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_events_by_batch ON webhook_events (batch_id);

-- state: pending (to send at next_attempt_at), delivered, or failed (given up after the retry window).
CREATE TABLE webhook_deliveries (
    event_id         TEXT NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  DOUBLE PRECISION NOT NULL,
    last_error       TEXT,
    lease_owner      TEXT,
    lease_expires_at DOUBLE PRECISION,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id);
