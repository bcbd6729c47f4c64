-- Broker mode's logins at the upstream IdP in flight: one row per `state` sent to the IdP
-- (its SHA-256 is the key), used once by the callback, gone after ten minutes.
CREATE TABLE oauth_upstream_logins (
    state_sha256 TEXT PRIMARY KEY,
    -- The checked authorization request and the PKCE verifier and nonce toward the IdP (JSON).
    login        TEXT NOT NULL,
    expires_at   BIGINT NOT NULL
);
