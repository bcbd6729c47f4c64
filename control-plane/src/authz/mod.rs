//! The OAuth 2.1 authorization server of broker mode (issue #11, "Two ways to log in" in
//! DESIGN.md): the rules every later piece calls, pure and unit-tested. No axum, no SQL, no
//! clock (every rule takes `now`), no randomness (fresh tokens and ids come in as arguments).
//!
//! What is here:
//! - [`error`]: the OAuth error answer (`error` + `error_description`) and its token-endpoint
//!   status (400, 401 for `invalid_client`, 500/503 for our faults).
//! - [`pkce`]: S256 only; the `/authorize` challenge check and the `/token` verifier check.
//! - [`redirect`]: which redirect URIs a client may register, and the `/authorize` match
//!   (exact, except any port for `http` loopback, RFC 8252 §7.3).
//! - [`resource`]: RFC 8707 `resource` → the token audience, one registered MCP server.
//! - [`token`]: raw tokens with redacted `Debug`, their SHA-256 hashes (all we keep), and the
//!   keyed derivation of refresh-token successors.
//! - [`grant`]: codes and refresh-token families as a state machine: single-use 60 s codes
//!   whose replay revokes what they issued, rotation with a 5 s same-pair grace window, reuse
//!   revokes the family, deleted or disabled clients; changes that reach outside come back as
//!   [`grant::Effect`]s.
//!
//! How the pieces fit, per request:
//! - `/authorize`: the client is known and active → [`redirect::resolve`] (on error: an error
//!   page, never a redirect) → [`pkce::validate_challenge`] and
//!   [`resource::resolve_audience`] (errors go back to the redirect URI with `state` and `iss`)
//!   → consent and the upstream login → [`grant::Grants::issue_code`] with a fresh code.
//! - `/token`, `authorization_code`: authenticate the client → [`grant::Grants::redeem_code`]
//!   (which runs [`pkce::verify`] and [`resource::check_token_resource`]) → sign the access
//!   token from [`grant::Issued`]; carry out every [`grant::Effect`] even on an error answer.
//! - `/token`, `refresh_token`: [`grant::Grants::refresh`] with the rotation key; on a
//!   repeated answer, re-sign the same access token (same `jti` and expiry).
//! - `/register` and the admin API: [`redirect::validate_registered`] for every redirect URI.
//! - Deleting a client: [`grant::Grants::revoke_client`].
//!
//! Not here yet: the endpoints (`http`), storage of clients, codes and families (the records
//! of [`grant::Grants`] become tables; redeemed codes are kept as long as their family so a
//! late replay still revokes), access-token signing and key rotation (`jwt-simple`), JWKS, RFC
//! 8414 metadata, `/revoke` (RFC 7009), DCR and CIMD client metadata, consent, the upstream
//! IdP federation and the built-in user store.

pub mod cimd;
pub mod clients;
pub mod error;
pub mod grant;
pub mod pages;
pub mod pkce;
pub mod rate_limit;
pub mod redirect;
pub mod resource;
pub mod revoked;
pub mod sealed;
pub mod server;
pub mod session;
pub mod signing;
pub mod store;
pub mod token;
pub mod upstream;
pub mod users;
