-- Registry, scopes and group mappings. Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Lists are stored as JSON text; timestamps as unix seconds.

CREATE TABLE servers (
    path            TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    description     TEXT NOT NULL DEFAULT '',
    proxy_pass_url  TEXT NOT NULL,
    tags            TEXT NOT NULL DEFAULT '[]',
    oauth_client_id TEXT,
    -- NULL: auto-detect from proxy_pass_url; 0: false; 1: true.
    append_mcp_path BIGINT,
    mcp_endpoint    TEXT,
    license         TEXT,
    num_tools       BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE mcp_scopes (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    -- JSON array of {"server", "methods", "tools"}.
    grants      TEXT NOT NULL DEFAULT '[]',
    updated_at  BIGINT NOT NULL
);

CREATE TABLE group_mappings (
    group_name TEXT PRIMARY KEY,
    -- JSON array of scope names.
    scopes     TEXT NOT NULL DEFAULT '[]',
    updated_at BIGINT NOT NULL
);
