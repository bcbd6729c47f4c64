-- Policy snapshot versions and the audit trail. Portable SQL (SQLite and PostgreSQL).

-- One row per distinct snapshot content, newest = highest version. Every replica assigns
-- versions through this table, so the same content has the same version everywhere.
CREATE TABLE policy_versions (
    version    BIGINT PRIMARY KEY,
    hash       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Decisions the filters made, shipped by the Envoy singleton. No tokens.
CREATE TABLE audit_events (
    id             TEXT PRIMARY KEY,
    time_ms        BIGINT NOT NULL,
    received_ms    BIGINT NOT NULL,
    request_id     TEXT,
    policy_version BIGINT NOT NULL,
    decision       TEXT NOT NULL,
    status         BIGINT NOT NULL,
    reason         TEXT NOT NULL,
    sub            TEXT,
    username       TEXT,
    issuer         TEXT,
    client_id      TEXT,
    -- JSON arrays of strings.
    groups_json    TEXT NOT NULL DEFAULT '[]',
    scopes_json    TEXT NOT NULL DEFAULT '[]',
    server         TEXT,
    method         TEXT,
    tool           TEXT,
    http_method    TEXT NOT NULL,
    path           TEXT NOT NULL
);

CREATE INDEX audit_events_time ON audit_events (time_ms, id);
CREATE INDEX audit_events_sub ON audit_events (sub, time_ms);
CREATE INDEX audit_events_server ON audit_events (server, time_ms);
