-- Static credentials for automation (CI jobs, agents without a browser). Only the SHA-256 of
-- each key is kept; the key itself is shown once, when it is created.
CREATE TABLE api_keys (
    name        TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL UNIQUE,
    subject     TEXT NOT NULL,
    -- JSON arrays of strings.
    groups_json TEXT NOT NULL DEFAULT '[]',
    scopes_json TEXT NOT NULL DEFAULT '[]',
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL
);
