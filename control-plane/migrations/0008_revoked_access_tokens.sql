-- Access tokens of revoked grants (a replayed code, a reused refresh token, RFC 7009, a client
-- disabled or deleted) that have not expired yet: every snapshot lists their `jti`s, so the
-- filters refuse them at once instead of when they expire.
CREATE TABLE oauth_revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
