//! Who is calling the API: the bootstrap admin token, or an IdP JWT verified with the policy
//! crate whose groups map (through the registry's group mappings) to scopes.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use policy::keys::Jwks;
use policy::snapshot::{IssuerSpec, SettingsSpec, Snapshot};
use subtle::ConstantTimeEq as _;

use crate::config::{sha256, Config};
use crate::error::AppError;
use crate::registry::Scope;
use crate::state::AppState;

/// Verifies credentials. Built once at start; the IdP's keys follow the published snapshot.
pub struct Authenticator {
    admin_token_sha256: Option<[u8; 32]>,
    admin_scope: String,
    idp_config: Option<crate::config::IdpConfig>,
    /// A policy with only the IdP issuer in it (the API's audiences, `PORTCULLIS_API_AUDIENCE`;
    /// not the servers' resources nor their extra audiences: a token for an MCP server is not
    /// an API credential): the same verification the filter does.
    idp: RwLock<Option<Arc<policy::Policy>>>,
}

impl Authenticator {
    pub fn new(config: &Config) -> anyhow::Result<Authenticator> {
        if let Some(idp) = config.idp.as_ref().filter(|i| i.api_audience_is_shared) {
            tracing::warn!(
                audiences = ?idp.audiences,
                "PORTCULLIS_API_AUDIENCE is not set: the API accepts PORTCULLIS_IDP_AUDIENCE, which every MCP server accepts too, so a token for an MCP server is also an API credential; give the API an audience of its own with PORTCULLIS_API_AUDIENCE"
            );
        }
        let auth = Authenticator {
            admin_token_sha256: config.admin_token_sha256,
            admin_scope: config.admin_scope.clone(),
            idp_config: config.idp.clone(),
            idp: RwLock::new(None),
        };
        if let Some(jwks) = config.idp.as_ref().and_then(|i| i.jwks.clone()) {
            let jwks: Jwks = serde_json::from_value(jwks).map_err(|e| {
                anyhow::anyhow!("IdP configuration (PORTCULLIS_IDP_*) refused: PORTCULLIS_IDP_JWKS_FILE is not a JWKS: {e}")
            })?;
            let policy = auth.idp_policy(jwks).map_err(|e| {
                anyhow::anyhow!("IdP configuration (PORTCULLIS_IDP_*) refused: {e}")
            })?;
            auth.store(policy);
        }
        Ok(auth)
    }

    /// Takes the IdP keys of a newly published snapshot (`None`: no keys yet).
    pub fn set_idp_jwks(&self, jwks: Option<Jwks>) {
        match jwks.map(|jwks| self.idp_policy(jwks)).transpose() {
            Ok(policy) => self.store(policy.flatten()),
            Err(e) => {
                tracing::error!(error = %e, "the IdP's keys do not load for API authentication; keeping the previous ones")
            }
        }
    }

    fn store(&self, policy: Option<policy::Policy>) {
        if let Ok(mut idp) = self.idp.write() {
            *idp = policy.map(Arc::new);
        }
    }

    /// `None` when no API audience is configured: IdP tokens are then not accepted by the API.
    fn idp_policy(&self, jwks: Jwks) -> Result<Option<policy::Policy>, policy::SnapshotError> {
        let Some(idp) = self
            .idp_config
            .as_ref()
            .filter(|i| !i.api_audiences.is_empty())
        else {
            return Ok(None);
        };
        let snapshot = Snapshot {
            format: 1,
            version: 0,
            issuers: vec![IssuerSpec {
                audiences: idp.api_audiences.clone(),
                ..crate::registry::issuer_spec(idp, jwks)
            }],
            servers: Vec::new(),
            group_mappings: Vec::new(),
            scopes: Vec::new(),
            api_keys: Vec::new(),
            settings: SettingsSpec::default(),
        };
        policy::Policy::compile(snapshot).map(Some)
    }

    fn idp(&self) -> Option<Arc<policy::Policy>> {
        self.idp.read().ok().and_then(|p| p.clone())
    }
}

/// An authenticated API caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `admin` for the bootstrap token, else the token's username.
    pub subject: String,
    pub groups: Vec<String>,
    /// Registry scopes mapped from the groups.
    pub scopes: Vec<String>,
    pub admin: bool,
}

impl Caller {
    pub fn require_admin(&self) -> Result<(), AppError> {
        if self.admin {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "this call needs an admin credential (the bootstrap admin token, or a token whose groups map to the admin scope)".into(),
            ))
        }
    }

    /// Whether this caller may see server `name`: admins see everything, others what one of
    /// their scopes grants (by name or `*`).
    pub fn may_access(&self, name: &str, scopes: &[Scope]) -> bool {
        self.admin
            || scopes.iter().any(|s| {
                self.scopes.contains(&s.name)
                    && s.grants.iter().any(|g| g.server == "*" || g.server == name)
            })
    }
}

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
        if bool::from(sha256(token.as_bytes()).ct_eq(expected)) {
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
        let auth = &state.auth;
        if let Some(expected) = &auth.admin_token_sha256 {
            if bool::from(sha256(token.as_bytes()).ct_eq(expected)) {
                return Ok(Caller {
                    subject: "admin".into(),
                    groups: Vec::new(),
                    scopes: vec![auth.admin_scope.clone()],
                    admin: true,
                });
            }
        }
        let Some(idp) = auth.idp() else {
            return Err(AppError::Unauthorized("invalid credential".into()));
        };
        if !policy::looks_like_jwt(token) {
            return Err(AppError::Unauthorized("invalid credential".into()));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let identity = idp
            .verify_jwt(token, now)
            .map_err(|e| AppError::Unauthorized(format!("invalid token: {}", e.reason())))?;
        let groups: Vec<String> = identity.groups.to_vec();
        let scopes = state.db.scopes_for_groups(&groups).await?;
        let admin = scopes.contains(&auth.admin_scope);
        Ok(Caller {
            subject: identity.username,
            groups,
            scopes,
            admin,
        })
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
