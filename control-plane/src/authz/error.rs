//! The OAuth error answer: an `error` code from the registries of RFC 6749 §4.1.2.1/§5.2,
//! RFC 8707 §2 and RFC 7591 §3.2.2, and a human `error_description`, plus the HTTP status each
//! code gets from the token and registration endpoints. Data only: the `http` edge turns it
//! into a response (JSON body, `Cache-Control: no-store`, `WWW-Authenticate` on 401).

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

/// Longest `error_description` we send; longer text is cut (it may echo client input).
pub const MAX_DESCRIPTION_LEN: usize = 200;

/// An OAuth `error` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A parameter is missing, repeated, malformed or not allowed (e.g. PKCE `plain`).
    InvalidRequest,
    /// Client authentication failed: unknown (deleted, expired), disabled, wrong secret.
    InvalidClient,
    /// The code or refresh token is invalid, expired, revoked, reused, or issued to another
    /// client; or the redirect URI or PKCE verifier does not match.
    InvalidGrant,
    /// The client may not use this grant type (e.g. `client_credentials` for a public client).
    UnauthorizedClient,
    /// A grant type we do not support (implicit, password, device code, …).
    UnsupportedGrantType,
    /// A scope that is unknown, malformed, or more than was granted.
    InvalidScope,
    /// RFC 8707: the `resource` is missing, malformed, unknown, or more than one.
    InvalidTarget,
    /// The person (or an operator rule) refused.
    AccessDenied,
    /// A fault of ours.
    ServerError,
    /// Overloaded or in maintenance; the client may retry.
    TemporarilyUnavailable,
    /// RFC 7591: a redirect URI in a registration is refused.
    InvalidRedirectUri,
    /// RFC 7591: other registration metadata is refused.
    InvalidClientMetadata,
}

impl ErrorCode {
    /// Every code, in the order above.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidClient,
        ErrorCode::InvalidGrant,
        ErrorCode::UnauthorizedClient,
        ErrorCode::UnsupportedGrantType,
        ErrorCode::InvalidScope,
        ErrorCode::InvalidTarget,
        ErrorCode::AccessDenied,
        ErrorCode::ServerError,
        ErrorCode::TemporarilyUnavailable,
        ErrorCode::InvalidRedirectUri,
        ErrorCode::InvalidClientMetadata,
    ];

    /// The code as it goes on the wire (`error=` / `"error":`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
        }
    }

    /// The HTTP status of a JSON error answer from the token endpoint (and `/register`,
    /// `/revoke`): RFC 6749 §5.2 says 400, except `invalid_client`, which is 401 (we always
    /// answer 401 there, with `WWW-Authenticate`, whether or not the client used the
    /// `Authorization` header). RFC 6749 defines `server_error` and `temporarily_unavailable`
    /// only for the authorization endpoint's redirect, where no status exists; on a JSON
    /// endpoint they get 500 and 503 so clients and proxies treat them as retryable faults,
    /// not as a refusal of the request.
    pub fn token_endpoint_status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient => 401,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error answer: `{"error": "...", "error_description": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{error}: {error_description}")]
pub struct OAuthError {
    pub error: ErrorCode,
    /// Printable ASCII without `"` and `\` (RFC 6749's character set), at most
    /// [`MAX_DESCRIPTION_LEN`] characters: [`OAuthError::new`] enforces it.
    pub error_description: Cow<'static, str>,
}

impl OAuthError {
    /// An error with its description; characters RFC 6749 does not allow in
    /// `error_description` become `?`, and over-long text is cut with `...`.
    pub fn new(error: ErrorCode, description: impl Into<Cow<'static, str>>) -> OAuthError {
        let description = description.into();
        let clean = |c: char| c.is_ascii() && (' '..='~').contains(&c) && c != '"' && c != '\\';
        let error_description =
            if description.chars().all(clean) && description.len() <= MAX_DESCRIPTION_LEN {
                description
            } else {
                let mut text: String = description
                    .chars()
                    .map(|c| if clean(c) { c } else { '?' })
                    .take(MAX_DESCRIPTION_LEN + 1)
                    .collect();
                if text.len() > MAX_DESCRIPTION_LEN {
                    text.truncate(MAX_DESCRIPTION_LEN - 3);
                    text.push_str("...");
                }
                Cow::Owned(text)
            };
        OAuthError {
            error,
            error_description,
        }
    }

    /// The status for the token endpoint: [`ErrorCode::token_endpoint_status`].
    pub fn token_endpoint_status(&self) -> u16 {
        self.error.token_endpoint_status()
    }

    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidGrant, d)
    }
    pub fn invalid_target(d: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidTarget, d)
    }
    pub fn invalid_redirect_uri(d: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidRedirectUri, d)
    }
    pub fn server_error(d: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError::new(ErrorCode::ServerError, d)
    }
}

#[cfg(test)]
mod tests;
