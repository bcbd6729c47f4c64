//! Who is calling: the extractors that read the bearer credential of a request and turn it
//! into a [`Caller`] (the API) or a [`SyncPeer`] (an Envoy sync service).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::error::AppError;
use super::state::AppState;
use crate::auth::{is_sync_token, Caller};

/// The bearer token of a request, or why there is none. Read with [`policy::bearer_token`], the
/// parser the filter and the xDS server use (scheme case-insensitive, token printable ASCII).
fn bearer_token(parts: &Parts) -> Result<&str, AppError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| AppError::Unauthorized("missing Authorization: Bearer credential".into()))?;
    policy::bearer_token(value.as_bytes()).map_err(|_| {
        AppError::Unauthorized(if value.to_str().is_ok() {
            "expected Authorization: Bearer <token>".into()
        } else {
            "malformed Authorization header".into()
        })
    })
}

/// An Envoy sync service, authenticated by `PORTCULLIS_SYNC_TOKEN`.
#[derive(Debug, Clone, Copy)]
pub struct SyncPeer;

impl FromRequestParts<AppState> for SyncPeer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<SyncPeer, AppError> {
        let Some(expected) = &state.config.sync_token_sha256 else {
            return Err(AppError::Unavailable(
                "policy sync is disabled: set PORTCULLIS_SYNC_TOKEN on the control plane".into(),
            ));
        };
        let token = bearer_token(parts)?;
        if is_sync_token(token, expected) {
            Ok(SyncPeer)
        } else {
            Err(AppError::Unauthorized("invalid sync token".into()))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, AppError> {
        let token = bearer_token(parts)?;
        if let Some(admin) = state.auth.admin(token) {
            return Ok(admin);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let identity = state.auth.verify_idp_token(token, now)?;
        let scopes = state.db.scopes_for_groups(&identity.groups).await?;
        Ok(state.auth.caller(identity, scopes))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, Request};

    use super::*;

    fn parts(authorization: Option<HeaderValue>) -> Parts {
        let mut b = Request::builder().uri("/api/servers");
        if let Some(v) = authorization {
            b = b.header(header::AUTHORIZATION, v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn read(value: &[u8]) -> Result<String, String> {
        let p = parts(Some(HeaderValue::from_bytes(value).unwrap()));
        bearer_token(&p)
            .map(str::to_owned)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        for v in ["Bearer tok", "bearer tok", "BEARER tok", "bEaReR tok"] {
            assert_eq!(read(v.as_bytes()), Ok("tok".into()), "{v}");
        }
        // RFC 6750: `"Bearer" 1*SP b64token`; surrounding whitespace is trimmed.
        assert_eq!(read(b"Bearer   tok  "), Ok("tok".into()));
    }

    #[test]
    fn junk_is_refused_with_the_old_answers() {
        assert_eq!(
            bearer_token(&parts(None)).unwrap_err().to_string(),
            "missing Authorization: Bearer credential"
        );
        for v in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer two  words",
            b"Bearer a b",
            b"Bearertok",
            b"Bearer\ttok",
            b"Token tok",
        ] {
            assert_eq!(
                read(v),
                Err("expected Authorization: Bearer <token>".into()),
                "{}",
                String::from_utf8_lossy(v)
            );
        }
        for v in [
            &b"Bearer \xff\xfe"[..],
            b"Bearer caf\xc3\xa9",
            b"\xffBearer tok",
        ] {
            assert_eq!(
                read(v),
                Err("malformed Authorization header".into()),
                "{}",
                String::from_utf8_lossy(v)
            );
        }
    }
}
