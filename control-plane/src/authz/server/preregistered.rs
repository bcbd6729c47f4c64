//! Clients an operator registers (`POST /api/oauth-clients`): public or confidential, with an
//! allowlist of redirect URIs, and for confidential ones the `client_credentials` grant (a
//! machine acting as itself, with the groups the operator gives it). The secret is returned
//! once and kept as SHA-256.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{
    random_id, server_error, sha256_hex, AccessFacts, AuthorizationServer, CLIENT_CREDENTIALS,
    GRANT_TYPES,
};
use crate::authz::clients::{Client, RegistrationType, TokenAuthMethod};
use crate::authz::error::{ErrorCode, OAuthError};
use crate::authz::grant::ClientStanding;
use crate::authz::redirect;
use crate::authz::resource;

/// An operator's registration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub client_name: String,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// A secret is made (shown once) and the client must present it.
    #[serde(default)]
    pub confidential: bool,
    /// Default: `authorization_code` and `refresh_token`; `client_credentials` only for a
    /// confidential client.
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    /// The groups of a `client_credentials` token (what its access comes from).
    #[serde(default)]
    pub groups: Vec<String>,
}

fn invalid(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, d.into())
}

impl AuthorizationServer {
    /// Registers `new`; returns the client as stored plus, once, its secret.
    pub async fn preregister(&self, new: NewClient, now: i64) -> Result<Value, OAuthError> {
        let name = new.client_name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(invalid(
                "client_name: 1 to 200 characters, no control characters",
            ));
        }
        let grant_types = new
            .grant_types
            .unwrap_or_else(|| GRANT_TYPES.iter().map(ToString::to_string).collect());
        if grant_types.is_empty() {
            return Err(invalid("grant_types may not be empty"));
        }
        for g in &grant_types {
            if g == CLIENT_CREDENTIALS && !new.confidential {
                return Err(invalid(
                    "client_credentials is for confidential clients only (set confidential)",
                ));
            }
            if !GRANT_TYPES.contains(&g.as_str()) && g != CLIENT_CREDENTIALS {
                return Err(invalid(format!(
                    "grant type {g:?} is not supported (authorization_code, refresh_token, client_credentials)"
                )));
            }
        }
        let interactive = grant_types.iter().any(|g| g == "authorization_code");
        if interactive && new.redirect_uris.is_empty() {
            return Err(OAuthError::invalid_redirect_uri(
                "redirect_uris is required for the authorization_code grant",
            ));
        }
        if grant_types.iter().any(|g| g == "refresh_token") && !interactive {
            return Err(invalid("refresh_token needs authorization_code"));
        }
        for uri in &new.redirect_uris {
            redirect::validate_registered(uri)?;
        }
        for group in &new.groups {
            if group.is_empty() || group.len() > 256 || group.chars().any(char::is_control) {
                return Err(invalid(
                    "groups: 1 to 256 characters each, no control characters",
                ));
            }
        }
        let secret = new.confidential.then(|| random_id("pcs_", 32));
        let mut metadata = Map::new();
        metadata.insert("grant_types".into(), json!(grant_types));
        metadata.insert(
            "response_types".into(),
            json!(if interactive { vec!["code"] } else { vec![] }),
        );
        metadata.insert("groups".into(), json!(new.groups));
        let client = Client {
            client_id: random_id("pc_", 16),
            registration_type: RegistrationType::Prereg,
            client_name: Some(name.to_string()),
            redirect_uris: new.redirect_uris,
            token_endpoint_auth_method: if new.confidential {
                TokenAuthMethod::ClientSecretBasic
            } else {
                TokenAuthMethod::None
            },
            secret_sha256: secret.as_deref().map(sha256_hex),
            status: "active".into(),
            metadata,
            created_at: now,
            expires_at: None,
            last_used_at: None,
            pending_redirect_uris: Vec::new(),
            document_fresh_until: None,
            pinned: false,
        };
        self.db
            .insert_oauth_client(&client)
            .await
            .map_err(|e| server_error("storing the client", &e))?;
        tracing::info!(client_id = %client.client_id, name, "client pre-registered");
        let mut out = json!(client);
        out["grant_types"] = json!(client.metadata["grant_types"]);
        out["groups"] = json!(client.metadata["groups"]);
        if let Some(secret) = secret {
            out["client_secret"] = json!(secret);
        }
        Ok(out)
    }

    /// `grant_type=client_credentials`: a confidential pre-registered client, for one MCP
    /// server (`resource`), with the groups the operator gave it. No refresh token.
    pub(super) async fn client_credentials(
        &self,
        client: &Client,
        standing: ClientStanding,
        requested: &[&str],
        scope: Option<&str>,
        now_ms: u64,
    ) -> Result<Value, OAuthError> {
        match standing {
            ClientStanding::Active => {}
            ClientStanding::Disabled | ClientStanding::Pending => {
                return Err(OAuthError::invalid_client("client is disabled"))
            }
            ClientStanding::Unknown => {
                return Err(OAuthError::invalid_client("unknown client: register again"))
            }
        }
        if client.registration_type != RegistrationType::Prereg
            || client.token_endpoint_auth_method == TokenAuthMethod::None
        {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "client_credentials is for confidential pre-registered clients only",
            ));
        }
        let servers = self
            .db
            .list_servers()
            .await
            .map_err(|e| server_error("reading the registry", &e))?;
        let known: Vec<String> = servers.iter().map(|s| s.mcp_url(&self.issuer)).collect();
        let audience = resource::resolve_audience(requested, &known)?.to_string();
        let groups: Vec<String> = client
            .metadata
            .get("groups")
            .and_then(|g| serde_json::from_value(g.clone()).ok())
            .unwrap_or_default();
        let scope = scope
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty() && self.advertised_scopes.iter().any(|a| a == s))
            .collect::<Vec<_>>()
            .join(" ");
        let iat = now_ms / 1000;
        let exp = iat + self.settings.access_token_ttl.as_secs();
        if let Err(e) = self
            .db
            .touch_oauth_client(
                &client.client_id,
                i64::try_from(iat).unwrap_or(i64::MAX),
                None,
            )
            .await
        {
            tracing::warn!(error = %e, "recording the client's last use");
        }
        self.access_token_answer(
            AccessFacts {
                client_id: &client.client_id,
                subject: &format!("client:{}", client.client_id),
                audience: &audience,
                jti: &random_id("at_", 16),
                iat,
                exp,
                scope,
                groups,
                name: client.client_name.clone(),
            },
            None,
        )
    }
}
