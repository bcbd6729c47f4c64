-- Broker mode's authorization server (src/authz). Portable SQL (SQLite and PostgreSQL).

-- OAuth clients: registered by DCR (RFC 7591), by an operator (pre-registered), or known by
-- their Client ID Metadata Document. A confidential client's secret is kept as its SHA-256.
CREATE TABLE oauth_clients (
    client_id          TEXT PRIMARY KEY,
    -- dcr | prereg | cimd
    registration_type  TEXT NOT NULL,
    client_name        TEXT,
    -- JSON array of strings.
    redirect_uris_json TEXT NOT NULL DEFAULT '[]',
    -- none | client_secret_basic | client_secret_post
    token_auth_method  TEXT NOT NULL,
    secret_sha256      TEXT,
    -- active | disabled
    status             TEXT NOT NULL,
    -- The registration request's other metadata (JSON object), echoed on read.
    metadata_json      TEXT NOT NULL DEFAULT '{}',
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT,
    last_used_at       BIGINT
);

-- The grant state machine's records (authz::grant): codes, refresh-token families and refresh
-- tokens, each as JSON. `version` makes every write a compare-and-set, so two replicas
-- redeeming one code cannot both succeed.
CREATE TABLE oauth_grant_records (
    kind       TEXT NOT NULL,
    record_key TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    record     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    -- Unix seconds after which the record is only kept for replay detection (clean-up may
    -- remove it a refresh lifetime later).
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, record_key)
);
CREATE INDEX oauth_grant_records_client ON oauth_grant_records (client_id);

-- The authorization server's signing keys. The private key is encrypted (ChaCha20-Poly1305
-- under the control plane's secret key); the public JWK is published until the overlap ends.
CREATE TABLE oauth_signing_keys (
    kid               TEXT PRIMARY KEY,
    alg               TEXT NOT NULL,
    private_key_enc   TEXT NOT NULL,
    public_jwk        TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    -- When a newer key took over signing (NULL while this one signs).
    superseded_at     BIGINT
);

-- The built-in user store (broker mode without an upstream IdP). Passwords as argon2id PHC
-- strings.
CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    -- JSON array of strings.
    groups_json   TEXT NOT NULL DEFAULT '[]',
    display_name  TEXT,
    disabled      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
