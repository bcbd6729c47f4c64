-- The IdP's signing keys, fetched by the control plane (src/idp_keys). Portable SQL (SQLite and
-- PostgreSQL). Stored so that every replica compiles the same snapshot.

CREATE TABLE idp_keys (
    issuer     TEXT NOT NULL,
    -- The key's kid, or its RFC 7638 thumbprint when it has none.
    kid        TEXT NOT NULL,
    -- The JWK as the IdP published it (JSON text).
    jwk        TEXT NOT NULL,
    -- Unix seconds.
    first_seen BIGINT NOT NULL,
    -- When the IdP stopped publishing it (NULL while published); trusted until the overlap ends.
    retired_at BIGINT,
    PRIMARY KEY (issuer, kid)
);
