-- Broker mode with an upstream IdP: the IdP's refresh token of each person's latest login there,
-- sealed (ChaCha20-Poly1305 under the secret key). A refresh at the broker refreshes there too and
-- re-reads the person's groups from the new ID token.
CREATE TABLE oauth_upstream_tokens (
    username       TEXT PRIMARY KEY,
    refresh_sealed TEXT NOT NULL,
    updated_at     BIGINT NOT NULL
);
