//! The authorization server of broker mode as a service: what each endpoint does, given
//! parsed input and the clock. The HTTP edge (`http::oauth`) parses requests and writes
//! responses; the rules come from the pure modules beside this one.
//!
//! Endpoints (all under [`policy::AUTHORIZATION_SERVER_PATH`], which the filter passes to
//! the control plane in broker mode; metadata at the RFC 8414 location):
//! - `/oauth/register`: RFC 7591 dynamic registration, rate-limited per client IP.
//! - `/oauth/authorize`: checks the request, shows the built-in login-and-consent page, and
//!   on a good password sends the person back with a single-use code, `state` and `iss`.
//! - `/oauth/token`: `authorization_code` (PKCE S256) and `refresh_token` (rotation), ES256
//!   access tokens whose audience is the MCP server's URL and whose `groups` are read from the
//!   user store at every issue (a removed group stops working within one token lifetime).
//! - `/oauth/revoke`: RFC 7009 for refresh tokens (the family goes).
//! - `/oauth/jwks`: the signing keys, also carried in the policy snapshot.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_simple::prelude::UnixTimeStamp;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq as _;

use super::clients::{Client, RegistrationType, TokenAuthMethod, GRANT_TYPES};
use super::error::{ErrorCode, OAuthError};
use super::grant::{
    AccessGrant, ClientStanding, CodeRedemption, Effect, FamilyId, GrantPolicy, Issued, NewFamily,
    RefreshRequest, Timestamp,
};
use super::rate_limit::RateLimiter;
use super::redirect::{self, RedirectKind};
use super::sealed::SecretKey;
use super::signing::{RotationSettings, SigningKeys};
use super::store::Start;
use super::token::{RotationKey, SecretToken, TokenHash};
use super::upstream::Upstream;
use crate::config::{BrokerConfig, Config};
use crate::storage::{Db, DbKind};

mod authorize;
mod documents;
mod federation;
mod preregistered;
pub use authorize::{AuthorizeOutcome, AuthorizeParams, LoginForm};
pub use federation::{CallbackParams, UpstreamContext};
pub use preregistered::NewClient;

/// Only for confidential pre-registered clients (machines acting as themselves).
const CLIENT_CREDENTIALS: &str = "client_credentials";

/// The authorization server; shared by every handler.
pub struct AuthorizationServer {
    db: Db,
    issuer: String,
    keys: Arc<SigningKeys>,
    secret: SecretKey,
    rotation: RotationKey,
    settings: BrokerConfig,
    grants: GrantPolicy,
    dcr_limit: RateLimiter,
    login_limit: RateLimiter,
    advertised_scopes: Vec<String>,
    /// Where people log in: the upstream IdP, or (`None`) the built-in user store.
    upstream: Option<Upstream>,
    revocations: tokio::sync::Notify,
    /// Client ID Metadata Documents.
    documents: documents::DocumentReader,
    /// The policy of the latest snapshot: which groups open which server, so a person who
    /// lacks them is told at sign-in (`None` until the first snapshot).
    policy: std::sync::RwLock<Option<Arc<policy::Policy>>>,
}

impl std::fmt::Debug for AuthorizationServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationServer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// A refused `/register`.
#[derive(Debug)]
pub enum RegisterError {
    Invalid(OAuthError),
    /// Over the per-IP limit: retry after this many seconds.
    RateLimited(u64),
    Disabled,
}

/// How a client authenticated at `/token` or `/revoke`.
#[derive(Debug, Default)]
pub struct ClientAuth {
    /// From `Authorization: Basic` (already form-decoded).
    pub basic: Option<(String, String)>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// A `/token` request's parameters.
#[derive(Debug, Default, Deserialize)]
pub struct TokenParams {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
}

/// What an access token says.
struct AccessFacts<'a> {
    client_id: &'a str,
    subject: &'a str,
    audience: &'a str,
    jti: &'a str,
    iat: u64,
    exp: u64,
    scope: String,
    groups: Vec<String>,
    name: Option<String>,
}

/// The access token's claims besides the registered ones.
#[derive(Debug, Serialize)]
struct AccessClaims {
    client_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    scope: String,
    groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

pub fn random_token() -> SecretToken {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    SecretToken::from_random(bytes)
}

fn random_id(prefix: &str, len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn sha256_hex(text: &str) -> String {
    TokenHash::of(text).to_hex()
}

/// Reads `PORTCULLIS_SECRET_KEY`, or the data directory's `secret.key` (made on first start,
/// mode 600) with SQLite; PostgreSQL replicas must share one, so there it is required.
fn secret_key(config: &Config, kind: DbKind) -> anyhow::Result<SecretKey> {
    if let Some(text) = &config.broker.secret_key {
        return SecretKey::parse(text.expose()).ok_or_else(|| {
            anyhow::anyhow!("PORTCULLIS_SECRET_KEY: expected 32 bytes as unpadded base64url (43 characters; `portcullis secret-key` makes one)")
        });
    }
    if kind == DbKind::Postgres {
        anyhow::bail!(
            "broker mode on PostgreSQL needs PORTCULLIS_SECRET_KEY (every replica must seal and \
             open the signing keys with the same key; `portcullis secret-key` makes one)"
        );
    }
    let path = config.data_dir.join("secret.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => SecretKey::parse(&text)
            .ok_or_else(|| anyhow::anyhow!("{} is not a Portcullis secret key", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut bytes);
            let key = SecretKey::new(bytes);
            std::fs::create_dir_all(&config.data_dir)?;
            write_private(&path, &key.to_text())?;
            tracing::info!(path = %path.display(), "made the broker's secret key");
            Ok(key)
        }
        Err(e) => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
    }
}

/// Writes `PORTCULLIS_USERS_FILE`'s users to the store (each replaced as the file says; users
/// not in it are left alone).
async fn load_users_file(db: &Db, path: &std::path::Path, federated: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("PORTCULLIS_USERS_FILE {}: {e}", path.display()))?;
    let users = super::users::read_users_file(&text, crate::storage::now())
        .map_err(|e| anyhow::anyhow!("PORTCULLIS_USERS_FILE {}: {e}", path.display()))?;
    for (user, hash) in &users {
        let created_at = db
            .get_user(&user.username)
            .await?
            .map_or(user.created_at, |(u, _)| u.created_at);
        let user = super::users::User {
            created_at,
            ..user.clone()
        };
        db.put_user(&user, Some(hash)).await?;
    }
    if federated {
        tracing::warn!(
            users = users.len(),
            "PORTCULLIS_USERS_FILE is read, but people log in at the IdP (PORTCULLIS_BROKER_CLIENT_ID): its users cannot sign in"
        );
    } else {
        tracing::info!(users = users.len(), path = %path.display(), "built-in users read");
    }
    Ok(())
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

impl AuthorizationServer {
    /// Opens the authorization server: its secret key, its signing keys (made on first start).
    pub async fn start(config: &Config, db: Db) -> anyhow::Result<Arc<AuthorizationServer>> {
        let secret = secret_key(config, db.kind())?;
        let settings = config.broker.clone();
        let upstream = match (&settings.upstream_client, &config.idp) {
            (None, _) => None,
            (Some((id, secret)), Some(idp)) => Some(Upstream::new(
                idp.clone(),
                id.clone(),
                secret.clone(),
                config.public_url(),
            )?),
            (Some(_), None) => anyhow::bail!(
                "PORTCULLIS_BROKER_CLIENT_ID is set but PORTCULLIS_IDP_ISSUER is not: the broker logs people in at that IdP"
            ),
        };
        let overlap = Duration::from_secs(24 * 3600).max(settings.access_token_ttl * 2);
        let keys = Arc::new(
            SigningKeys::load(
                db.clone(),
                secret.clone(),
                RotationSettings {
                    overlap,
                    ..RotationSettings::default()
                },
            )
            .await?,
        );
        let documents = documents::DocumentReader::new(&settings.cimd)?;
        if let Some(path) = &settings.users_file {
            load_users_file(&db, path, upstream.is_some()).await?;
        }
        Ok(Arc::new(AuthorizationServer {
            documents,
            policy: std::sync::RwLock::new(None),
            db,
            issuer: config.public_url().trim_end_matches('/').to_string(),
            rotation: secret.rotation_key(),
            dcr_limit: RateLimiter::new(settings.dcr_per_minute, 60),
            login_limit: RateLimiter::new(settings.login_failures_per_minute, 60),
            keys,
            secret,
            settings,
            grants: GrantPolicy::default(),
            advertised_scopes: config.advertised_scopes.clone(),
            upstream,
            revocations: tokio::sync::Notify::new(),
        }))
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A new snapshot was published: its policy says who may use which server.
    pub fn use_policy(&self, policy: Arc<policy::Policy>) {
        if let Ok(mut current) = self.policy.write() {
            *current = Some(policy);
        }
    }

    /// The groups that would open `audience` (its MCP URL) to a person in `groups`, when theirs
    /// do not (possibly none); `None` when they do, or when it cannot be told yet.
    fn lacking_groups(&self, audience: &str, groups: &[String]) -> Option<Vec<String>> {
        let policy = self.policy.read().ok()?.clone()?;
        policy.server_access_for_groups(audience, groups)?.err()
    }

    /// Whether people log in at an upstream IdP (the edge then fetches its metadata and keys
    /// for [`UpstreamContext`]).
    pub fn federated(&self) -> bool {
        self.upstream.is_some()
    }

    pub fn keys(&self) -> &Arc<SigningKeys> {
        &self.keys
    }

    fn endpoint(&self, name: &str) -> String {
        format!(
            "{}{}/{name}",
            self.issuer,
            policy::AUTHORIZATION_SERVER_PATH
        )
    }

    /// RFC 8414 metadata (also served as OpenID discovery: same members).
    pub fn metadata(&self) -> Value {
        let mut doc = json!({
            "issuer": self.issuer,
            "authorization_endpoint": self.endpoint("authorize"),
            "token_endpoint": self.endpoint("token"),
            "revocation_endpoint": self.endpoint("revoke"),
            "jwks_uri": self.endpoint("jwks"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", CLIENT_CREDENTIALS],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported":
                ["none", "client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported":
                ["none", "client_secret_basic", "client_secret_post"],
            "authorization_response_iss_parameter_supported": true,
            "client_id_metadata_document_supported": self.documents.advertised(),
            "scopes_supported": self.advertised_scopes,
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [super::signing::ALGORITHM],
        });
        if self.settings.dcr_per_minute > 0 {
            doc["registration_endpoint"] = json!(self.endpoint("register"));
        }
        doc
    }

    /// RFC 7591 registration. `ip` keys the rate limit.
    pub async fn register(
        &self,
        body: Map<String, Value>,
        ip: &str,
        now: i64,
    ) -> Result<Value, RegisterError> {
        if self.settings.dcr_per_minute == 0 {
            return Err(RegisterError::Disabled);
        }
        self.dcr_limit
            .hit(ip, now)
            .map_err(RegisterError::RateLimited)?;
        let invalid = |d: String| {
            RegisterError::Invalid(OAuthError::new(ErrorCode::InvalidClientMetadata, d))
        };
        let strings = |name: &str| super::clients::string_list(&body, name).map_err(invalid);
        let redirect_uris = strings("redirect_uris")?.unwrap_or_default();
        if redirect_uris.is_empty() {
            return Err(RegisterError::Invalid(OAuthError::invalid_redirect_uri(
                "redirect_uris is required (at least one)",
            )));
        }
        if redirect_uris.len() > 20 {
            return Err(RegisterError::Invalid(OAuthError::invalid_redirect_uri(
                "at most 20 redirect_uris",
            )));
        }
        for uri in &redirect_uris {
            redirect::validate_registered(uri).map_err(RegisterError::Invalid)?;
        }
        let method = match body.get("token_endpoint_auth_method") {
            None | Some(Value::Null) => TokenAuthMethod::ClientSecretBasic,
            Some(Value::String(m)) => TokenAuthMethod::parse(m).ok_or_else(|| {
                invalid(format!(
                    "token_endpoint_auth_method {m:?} is not supported (none, client_secret_basic, client_secret_post)"
                ))
            })?,
            Some(_) => return Err(invalid("token_endpoint_auth_method must be a string".into())),
        };
        let grant_types =
            strings("grant_types")?.unwrap_or_else(|| vec!["authorization_code".into()]);
        if let Some(bad) = grant_types
            .iter()
            .find(|g| !GRANT_TYPES.contains(&g.as_str()))
        {
            return Err(invalid(format!(
                "grant type {bad:?} is not supported (authorization_code, refresh_token)"
            )));
        }
        if !grant_types.iter().any(|g| g == "authorization_code") {
            return Err(invalid(
                "grant_types must include authorization_code".into(),
            ));
        }
        let response_types = strings("response_types")?.unwrap_or_else(|| vec!["code".into()]);
        if response_types != ["code"] {
            return Err(invalid("response_types must be [\"code\"]".into()));
        }
        // MCP 2026-07-28 asks clients to say what they are; 2025-11-25 clients (the TypeScript
        // SDK, mcp-remote) do not, and must keep working, so it is checked when sent only.
        match body.get("application_type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t == "native" || t == "web" => {}
            Some(other) => {
                return Err(invalid(format!(
                    "application_type {other} is not supported (native or web)"
                )))
            }
        }
        let client_name = match body.get("client_name") {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) if n.chars().count() <= 200 => Some(n.clone()),
            Some(_) => {
                return Err(invalid(
                    "client_name must be a string of at most 200 characters".into(),
                ))
            }
        };
        let mut metadata = body.clone();
        for known in [
            "redirect_uris",
            "token_endpoint_auth_method",
            "grant_types",
            "response_types",
            "client_name",
            "client_id",
            "client_secret",
        ] {
            metadata.remove(known);
        }
        metadata.insert("grant_types".into(), json!(grant_types));
        metadata.insert("response_types".into(), json!(response_types));
        if serde_json::to_string(&metadata).map_or(0, |s| s.len()) > 8 * 1024 {
            return Err(invalid("client metadata is larger than 8 KiB".into()));
        }
        let secret = (method != TokenAuthMethod::None).then(|| random_id("pcs_", 32));
        let client = Client {
            client_id: random_id("pc_", 16),
            registration_type: RegistrationType::Dcr,
            client_name,
            redirect_uris,
            token_endpoint_auth_method: method,
            secret_sha256: secret.as_deref().map(sha256_hex),
            // Where an administrator approves registrations, the client waits for it.
            status: if self.settings.dcr_approval {
                "pending".into()
            } else {
                "active".into()
            },
            metadata,
            created_at: now,
            expires_at: self.dcr_lifetime().map(|l| now.saturating_add(l)),
            last_used_at: None,
            pending_redirect_uris: Vec::new(),
            document_fresh_until: None,
            pinned: false,
        };
        self.db
            .insert_oauth_client(&client)
            .await
            .map_err(|e| RegisterError::Invalid(server_error("storing the client", &e)))?;
        tracing::info!(client_id = %client.client_id, name = ?client.client_name, status = %client.status, "client registered (DCR)");
        let mut out = client.metadata.clone();
        out.insert("client_id".into(), json!(client.client_id));
        out.insert("client_id_issued_at".into(), json!(now));
        out.insert("redirect_uris".into(), json!(client.redirect_uris));
        out.insert("token_endpoint_auth_method".into(), json!(method.as_str()));
        if let Some(name) = &client.client_name {
            out.insert("client_name".into(), json!(name));
        }
        if let Some(secret) = secret {
            out.insert("client_secret".into(), json!(secret));
            out.insert("client_secret_expires_at".into(), json!(0));
        }
        Ok(Value::Object(out))
    }

    /// Finds the client a `/token` or `/revoke` request speaks for and checks its secret.
    /// Returns the client (if it exists) and its standing; a wrong secret is `invalid_client`.
    async fn authenticate_client(
        &self,
        auth: &ClientAuth,
        now: i64,
    ) -> Result<(Client, ClientStanding), OAuthError> {
        let (id, secret) = match (&auth.basic, &auth.client_id) {
            (Some((id, secret)), body_id) => {
                if body_id.as_ref().is_some_and(|b| b != id) {
                    return Err(OAuthError::invalid_request(
                        "client_id differs from the Authorization header's",
                    ));
                }
                if auth.client_secret.is_some() {
                    return Err(OAuthError::invalid_request(
                        "use one client authentication method, not two",
                    ));
                }
                (id.clone(), Some(secret.clone()))
            }
            (None, Some(id)) => (id.clone(), auth.client_secret.clone()),
            (None, None) => return Err(OAuthError::invalid_client("client_id is required")),
        };
        let client = self
            .db
            .get_oauth_client(&id)
            .await
            .map_err(|e| server_error("reading the client", &e))?
            .ok_or_else(|| OAuthError::invalid_client("unknown client: register again"))?;
        match (
            client.token_endpoint_auth_method,
            &client.secret_sha256,
            secret,
        ) {
            (TokenAuthMethod::None, _, None) => {}
            (TokenAuthMethod::None, _, Some(_)) => {
                return Err(OAuthError::invalid_client(
                    "this is a public client: it has no secret",
                ))
            }
            (_, Some(stored), Some(given)) => {
                let given = sha256_hex(&given);
                if !bool::from(given.as_bytes().ct_eq(stored.as_bytes())) {
                    return Err(OAuthError::invalid_client("client authentication failed"));
                }
            }
            (_, _, None) => {
                return Err(OAuthError::invalid_client(
                    "this client must authenticate with its secret",
                ))
            }
            (_, None, Some(_)) => {
                return Err(OAuthError::invalid_client("client authentication failed"))
            }
        }
        let standing = if client.is_active(now) {
            ClientStanding::Active
        } else if client.status == "disabled" {
            ClientStanding::Disabled
        } else if client.status == "pending" {
            ClientStanding::Pending
        } else {
            ClientStanding::Unknown
        };
        Ok((client, standing))
    }

    /// `/token`. `upstream`: the IdP's metadata and keys, when people log in there (a
    /// refresh re-reads their groups there).
    pub async fn token(
        &self,
        params: &TokenParams,
        auth: &ClientAuth,
        resource: &[String],
        now_ms: u64,
        upstream: Option<&UpstreamContext>,
    ) -> Result<Value, OAuthError> {
        let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        let resource: Vec<&str> = resource.iter().map(String::as_str).collect();
        let grant_type = params
            .grant_type
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
        if !GRANT_TYPES.contains(&grant_type) && grant_type != CLIENT_CREDENTIALS {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant_type {grant_type:?} is not supported (authorization_code, refresh_token, client_credentials)"),
            ));
        }
        let (client, standing) = self.authenticate_client(auth, now).await?;
        let registered_grants: Vec<String> = client
            .metadata
            .get("grant_types")
            .and_then(|g| serde_json::from_value(g.clone()).ok())
            .unwrap_or_else(|| vec!["authorization_code".into()]);
        if !registered_grants.iter().any(|g| g == grant_type) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                format!("this client did not register the {grant_type} grant"),
            ));
        }
        if grant_type == CLIENT_CREDENTIALS {
            return self
                .client_credentials(
                    &client,
                    standing,
                    &resource,
                    params.scope.as_deref(),
                    now_ms,
                )
                .await;
        }
        let wants_refresh = registered_grants.iter().any(|g| g == "refresh_token");
        let access = AccessGrant {
            id: random_id("at_", 16),
            expires_at: Timestamp(now_ms).plus(self.settings.access_token_ttl),
        };
        let result =
            match grant_type {
                "authorization_code" => {
                    let code = SecretToken::new(
                        params
                            .code
                            .as_deref()
                            .ok_or_else(|| OAuthError::invalid_request("code is required"))?,
                    );
                    let new = NewFamily {
                        id: FamilyId(random_id("fam_", 16)),
                        refresh: wants_refresh.then(random_token),
                        access,
                    };
                    let redemption = CodeRedemption {
                        code: &code,
                        client_id: &client.client_id,
                        client: standing,
                        redirect_uri: params.redirect_uri.as_deref(),
                        code_verifier: params.code_verifier.as_deref(),
                        resource: &resource,
                    };
                    self.db
                        .with_grants(self.grants, Start::Code(code.hash()), |g| {
                            g.redeem_code(&redemption, new.clone(), Timestamp(now_ms))
                        })
                        .await
                        .map_err(|e| server_error("the grant records", &e))?
                }
                _ => {
                    let token =
                        SecretToken::new(params.refresh_token.as_deref().ok_or_else(|| {
                            OAuthError::invalid_request("refresh_token is required")
                        })?);
                    let request = RefreshRequest {
                        token: &token,
                        client_id: &client.client_id,
                        client: standing,
                        resource: &resource,
                    };
                    self.db
                        .with_grants(self.grants, Start::Refresh(token.hash()), |g| {
                            g.refresh(&request, &self.rotation, access.clone(), Timestamp(now_ms))
                        })
                        .await
                        .map_err(|e| server_error("the grant records", &e))?
                }
            };
        let issued = match result {
            Ok(issued) => issued,
            Err(refusal) => {
                self.carry_out(&refusal.effects).await;
                return Err(refusal.error);
            }
        };
        if grant_type == "refresh_token" && !issued.repeated {
            if let Err(e) = self
                .reread_upstream_groups(&issued.grant.subject, upstream, now_ms)
                .await
            {
                // The pair just made is never handed out: its family goes.
                if let Some(new) = &issued.refresh {
                    let hash = new.hash();
                    let client_id = client.client_id.clone();
                    if let Ok(effects) = self
                        .db
                        .with_grants(self.grants, Start::Refresh(hash), |g| {
                            g.revoke_refresh_token(&hash, &client_id, Timestamp(now_ms))
                        })
                        .await
                    {
                        self.carry_out(&effects).await;
                    }
                }
                return Err(e);
            }
        }
        let lifetime = (client.registration_type != RegistrationType::Prereg && !client.pinned)
            .then(|| self.dcr_lifetime())
            .flatten();
        if let Err(e) = self
            .db
            .touch_oauth_client(&client.client_id, now, lifetime)
            .await
        {
            tracing::warn!(error = %e, "recording the client's last use");
        }
        self.token_response(&issued).await
    }

    /// Revocations reach outside: the access tokens of a revoked grant are listed in the next
    /// snapshot (so the filters refuse them at once), and [`Self::revocations`] wakes the task
    /// that publishes it.
    async fn carry_out(&self, effects: &[Effect]) {
        for effect in effects {
            let Effect::RevokeFamily {
                family,
                reason,
                access_tokens,
            } = effect;
            tracing::warn!(
                family = %family.0,
                reason = ?reason,
                live_access_tokens = access_tokens.len(),
                "grant revoked"
            );
            if access_tokens.is_empty() {
                continue;
            }
            // Listed for at most an access token's life (plus the filters' clock leeway).
            let until = crate::storage::now()
                .saturating_add(
                    i64::try_from(self.settings.access_token_ttl.as_secs()).unwrap_or(i64::MAX),
                )
                .saturating_add(60);
            match self.db.insert_revoked_tokens(access_tokens, until).await {
                Ok(()) => self.revocations.notify_one(),
                Err(e) => tracing::error!(
                    error = %e,
                    "recording revoked access tokens: they stay valid until they expire"
                ),
            }
        }
    }

    /// Notified after access tokens were revoked (serve publishes a new snapshot).
    pub fn revocations(&self) -> &tokio::sync::Notify {
        &self.revocations
    }

    async fn token_response(&self, issued: &Issued) -> Result<Value, OAuthError> {
        let user = self
            .db
            .get_user(&issued.grant.subject)
            .await
            .map_err(|e| server_error("reading the user", &e))?;
        let Some((user, _)) = user.filter(|(u, _)| !u.disabled) else {
            return Err(OAuthError::invalid_grant(
                "the person this grant is for no longer exists or is disabled",
            ));
        };
        self.access_token_answer(
            AccessFacts {
                client_id: &issued.grant.client_id,
                subject: &issued.grant.subject,
                audience: &issued.grant.audience,
                jti: &issued.access.id,
                // From the grant, not the clock: a refresh retried in the grace window gets
                // the same token, claims and all.
                iat: (issued.access.expires_at.0 / 1000)
                    .saturating_sub(self.settings.access_token_ttl.as_secs()),
                exp: issued.access.expires_at.0 / 1000,
                scope: issued.grant.scopes.join(" "),
                groups: user.groups,
                name: user.display_name,
            },
            issued.refresh.as_ref(),
        )
    }

    /// Signs an access token and writes the token endpoint's answer.
    fn access_token_answer(
        &self,
        f: AccessFacts<'_>,
        refresh: Option<&SecretToken>,
    ) -> Result<Value, OAuthError> {
        let mut claims = jwt_simple::claims::Claims::with_custom_claims(
            AccessClaims {
                client_id: f.client_id.to_string(),
                scope: f.scope.clone(),
                groups: f.groups,
                name: f.name,
            },
            jwt_simple::prelude::Duration::from_secs(0),
        )
        .with_issuer(&self.issuer)
        .with_subject(f.subject)
        .with_audience(f.audience)
        .with_jwt_id(f.jti);
        claims.issued_at = Some(UnixTimeStamp::from_secs(f.iat));
        claims.invalid_before = None;
        claims.expires_at = Some(UnixTimeStamp::from_secs(f.exp));
        let access_token = self
            .keys
            .sign(claims)
            .map_err(|e| server_error("signing the access token", &e))?;
        let mut out = json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": f.exp.saturating_sub(f.iat),
        });
        if !f.scope.is_empty() {
            out["scope"] = json!(f.scope);
        }
        if let Some(refresh) = refresh {
            out["refresh_token"] = json!(refresh.expose());
        }
        Ok(out)
    }

    /// RFC 7009: a refresh token's family is revoked; anything else (an access token, an
    /// unknown token) is answered the same, as the RFC asks.
    pub async fn revoke(
        &self,
        token: Option<&str>,
        auth: &ClientAuth,
        now_ms: u64,
    ) -> Result<(), OAuthError> {
        let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        let (client, _) = self.authenticate_client(auth, now).await?;
        let token = token.ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        // Ours are JWTs; refresh tokens are opaque (no dots).
        if policy::looks_like_jwt(token) {
            return self
                .revoke_access_token(token, &client.client_id, now)
                .await;
        }
        let hash = TokenHash::of(token);
        let client_id = client.client_id.clone();
        let effects = self
            .db
            .with_grants(self.grants, Start::Refresh(hash), |g| {
                g.revoke_refresh_token(&hash, &client_id, Timestamp(now_ms))
            })
            .await
            .map_err(|e| server_error("the grant records", &e))?;
        self.carry_out(&effects).await;
        Ok(())
    }

    /// RFC 7009 for one access token: a live one of ours, issued to `client_id`, is listed as
    /// revoked in the next snapshot (Envoy refuses it within a push) until it expires. Any
    /// other token (expired, altered, another issuer's, already revoked) changes nothing and
    /// is answered 200 all the same, as the RFC asks; one issued to another client is refused.
    async fn revoke_access_token(
        &self,
        token: &str,
        client_id: &str,
        now: i64,
    ) -> Result<(), OAuthError> {
        let Some(policy) = self.policy.read().ok().and_then(|p| p.clone()) else {
            return Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the authorization server has no policy yet; try again shortly",
            ));
        };
        let Ok(identity) = policy.verify_jwt(token, u64::try_from(now).unwrap_or(0)) else {
            return Ok(());
        };
        if identity.issuer != self.issuer {
            return Ok(());
        }
        if identity.client_id.as_deref() != Some(client_id) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "the token was issued to another client",
            ));
        }
        // The signature was verified above: its claims are ours to read.
        let jti = super::token::verified_claims(token)
            .and_then(|c| c.get("jti").and_then(Value::as_str).map(str::to_string));
        let Some(jti) = jti else {
            return Ok(());
        };
        let until = identity
            .expires_at
            .and_then(|e| i64::try_from(e).ok())
            .unwrap_or(now)
            .saturating_add(60);
        self.db
            .insert_revoked_tokens(std::slice::from_ref(&jti), until)
            .await
            .map_err(|e| server_error("recording the revocation", &e))?;
        tracing::info!(client_id, jti = %jti, "access token revoked (RFC 7009)");
        self.revocations.notify_one();
        Ok(())
    }

    /// How long a DCR client lives unused (`PORTCULLIS_DCR_CLIENT_DAYS`; `None`: for ever).
    fn dcr_lifetime(&self) -> Option<i64> {
        (self.settings.dcr_client_days > 0)
            .then(|| i64::from(self.settings.dcr_client_days) * 86_400)
    }

    /// Removes the DCR clients that expired unused and revokes what they held. Returns how
    /// many went.
    pub async fn remove_expired_clients(&self, now_ms: u64) -> Result<usize, OAuthError> {
        let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        let removed = self
            .db
            .remove_expired_oauth_clients(now)
            .await
            .map_err(|e| server_error("removing expired clients", &e))?;
        for id in &removed {
            tracing::info!(client_id = %id, "client registration expired unused: removed");
            self.revoke_client(id, now_ms).await?;
        }
        Ok(removed.len())
    }

    /// Operator: a client is disabled or deleted; everything it holds is revoked.
    pub async fn revoke_client(&self, client_id: &str, now_ms: u64) -> Result<(), OAuthError> {
        let effects = self
            .db
            .with_grants(self.grants, Start::Client(client_id), |g| {
                g.revoke_client(client_id, Timestamp(now_ms))
            })
            .await
            .map_err(|e| server_error("the grant records", &e))?;
        self.carry_out(&effects).await;
        Ok(())
    }
}

/// Our fault: logged with its cause, answered without it.
fn server_error(what: &str, e: &dyn std::fmt::Display) -> OAuthError {
    tracing::error!(error = %e, "authorization server: {what}");
    OAuthError::server_error(format!("the authorization server failed on {what}"))
}

/// Whether every redirect URI of a client is on the person's own machine.
fn loopback_only(client: &Client) -> bool {
    client
        .redirect_uris
        .iter()
        .all(|u| redirect::validate_registered(u).is_ok_and(|r| r.kind() != RedirectKind::Https))
}
