-- Exactly-once audit: each event carries an id made in the filter (VM nonce, VM start, sequence).
-- The control plane stores each id once (INSERT … ON CONFLICT (event_id) DO NOTHING), so a batch
-- sent again after its answer was lost is not stored twice. Events from older filters have no
-- id (NULL): a UNIQUE index allows any number of NULLs in SQLite and PostgreSQL alike.
ALTER TABLE audit_events ADD COLUMN event_id TEXT;
CREATE UNIQUE INDEX audit_events_event_id ON audit_events (event_id);

-- Where the trail is incomplete: runs of events an Envoy lost before they reached a control
-- plane (its buffer was full, a batch was refused, a queue item was malformed). One row per
-- run, keyed by the id the Envoy made; a run that goes on is sent again with a larger count and
-- the row keeps the largest.
CREATE TABLE audit_gaps (
    id          TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    from_ms     BIGINT NOT NULL,
    to_ms       BIGINT NOT NULL,
    lost        BIGINT NOT NULL,
    received_ms BIGINT NOT NULL
);

CREATE INDEX audit_gaps_time ON audit_gaps (to_ms, from_ms);
