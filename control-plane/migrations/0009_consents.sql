-- Broker mode: which clients a person has allowed. With a signed session cookie from an
-- earlier sign-in, a client the person already allowed gets its code without a page.
CREATE TABLE oauth_consents (
    username    TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    approved_at BIGINT NOT NULL,
    PRIMARY KEY (username, client_id)
);
