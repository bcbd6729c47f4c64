//! Who is calling the API: the bootstrap admin token, or an IdP JWT verified with the policy
//! crate whose groups map (through the registry's group mappings) to scopes.

use std::sync::{Arc, RwLock};

use policy::keys::Jwks;
use policy::snapshot::{IssuerSpec, SettingsSpec, Snapshot};
use subtle::ConstantTimeEq as _;

use crate::config::{sha256, Config};
use crate::registry::Scope;

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
                tracing::error!(error = %e, "the IdP's keys do not load for API authentication; keeping the previous ones");
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

    /// The bootstrap admin, when `token` is its token (compared in constant time).
    pub fn admin(&self, token: &str) -> Option<Caller> {
        let expected = self.admin_token_sha256.as_ref()?;
        bool::from(sha256(token.as_bytes()).ct_eq(expected)).then(|| Caller {
            subject: "admin".into(),
            groups: Vec::new(),
            scopes: vec![self.admin_scope.clone()],
            admin: true,
        })
    }

    /// The identity in an IdP token for the API, verified as the filter verifies tokens
    /// (`now` in Unix seconds).
    pub fn verify_idp_token(
        &self,
        token: &str,
        now: u64,
    ) -> Result<policy::Identity, CredentialError> {
        let idp = self.idp().ok_or(CredentialError::Unknown)?;
        if !policy::looks_like_jwt(token) {
            return Err(CredentialError::Unknown);
        }
        idp.verify_jwt(token, now)
            .map_err(|e| CredentialError::InvalidToken { reason: e.reason() })
    }

    /// The caller an IdP identity is, given the registry scopes its groups map to.
    pub fn caller(&self, identity: policy::Identity, scopes: Vec<String>) -> Caller {
        let admin = scopes.contains(&self.admin_scope);
        Caller {
            subject: identity.username,
            groups: identity.groups.to_vec(),
            scopes,
            admin,
        }
    }
}

/// Whether `token` is the sync token whose SHA-256 is `expected` (constant time).
pub fn is_sync_token(token: &str, expected: &[u8; 32]) -> bool {
    bool::from(sha256(token.as_bytes()).ct_eq(expected))
}

/// An API call that needs an admin made by someone else.
#[derive(Debug, thiserror::Error)]
#[error("this call needs an admin credential (the bootstrap admin token, or a token whose groups map to the admin scope)")]
pub struct NotAdmin;

/// Why a credential is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("invalid credential")]
    Unknown,
    /// `reason` is the policy crate's refusal code, safe to send.
    #[error("invalid token: {reason}")]
    InvalidToken { reason: &'static str },
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
    pub fn require_admin(&self) -> Result<(), NotAdmin> {
        if self.admin {
            Ok(())
        } else {
            Err(NotAdmin)
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
