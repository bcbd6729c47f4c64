//! Discovery documents, served without authentication and with CORS `*`:
//!
//! - RFC 9728 protected-resource metadata for every registered server, at
//!   `/.well-known/oauth-protected-resource<server path>`, `…<server path>/mcp` (and the path of
//!   a custom `mcp_endpoint`), at `<server path>/.well-known/oauth-protected-resource`, and at
//!   the bare root when exactly one server is registered.
//! - In direct mode, RFC 8414 authorization-server metadata mirroring the IdP's OIDC discovery
//!   document (cached, normalised), at `/.well-known/oauth-authorization-server`,
//!   `/.well-known/oauth-authorization-server<issuer path>`,
//!   `/.well-known/openid-configuration[<issuer path>]` and
//!   `<issuer path>/.well-known/openid-configuration`.

use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::config::{AuthMode, Config};
use crate::error::{AppError, AppResult};
use crate::registry::Server;
use crate::state::AppState;

pub const PRM: &str = "/.well-known/oauth-protected-resource";
pub const OAUTH_AS: &str = "/.well-known/oauth-authorization-server";
pub const OIDC: &str = "/.well-known/openid-configuration";

/// Largest discovery document accepted from the IdP.
const MAX_DISCOVERY_BYTES: usize = 256 * 1024;

/// The IdP's discovery document, fetched on demand and cached for the configured TTL.
pub struct IdpMetadata {
    client: reqwest::Client,
    ttl: Duration,
    cache: Mutex<Option<(Instant, Value)>>,
}

impl IdpMetadata {
    pub fn new(config: &Config) -> anyhow::Result<IdpMetadata> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(IdpMetadata {
            client,
            ttl: config.idp_metadata_ttl,
            cache: Mutex::new(None),
        })
    }

    /// The normalised document: fresh from cache, else fetched; a stale copy is served when
    /// the IdP cannot be reached.
    pub async fn get(&self, config: &Config) -> AppResult<Value> {
        let Some(idp) = &config.idp else {
            return Err(AppError::NotFound(
                "no identity provider configured (PORTCULLIS_IDP_ISSUER)".into(),
            ));
        };
        let mut cache = self.cache.lock().await;
        if let Some((at, doc)) = cache.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(doc.clone());
            }
        }
        match self.fetch(&idp.discovery_url, &idp.issuer).await {
            Ok(doc) => {
                *cache = Some((Instant::now(), doc.clone()));
                Ok(doc)
            }
            Err(cause) => match cache.as_ref() {
                Some((_, stale)) => {
                    tracing::warn!(%cause, "IdP discovery failed; serving the cached copy");
                    Ok(stale.clone())
                }
                None => Err(AppError::BadGateway {
                    message: "the identity provider's discovery document is unavailable".into(),
                    cause,
                }),
            },
        }
    }

    async fn fetch(&self, url: &str, issuer: &str) -> Result<Value, String> {
        let response = self
            .client
            .get(url)
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|n| n as usize > MAX_DISCOVERY_BYTES)
        {
            return Err(format!(
                "GET {url}: document larger than {MAX_DISCOVERY_BYTES} bytes"
            ));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if bytes.len() > MAX_DISCOVERY_BYTES {
            return Err(format!(
                "GET {url}: document larger than {MAX_DISCOVERY_BYTES} bytes"
            ));
        }
        let doc: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("GET {url}: not JSON: {e}"))?;
        normalize_as_metadata(doc, issuer).map_err(|e| format!("GET {url}: {e}"))
    }
}

/// Checks the IdP's document and fills in what MCP clients need: `issuer` must be the
/// configured issuer; `code_challenge_methods_supported: ["S256"]` is added when missing
/// (MCP clients refuse an AS without it; every IdP we front does PKCE S256). The IdP's
/// endpoints are kept as they are.
pub fn normalize_as_metadata(mut doc: Value, issuer: &str) -> Result<Value, String> {
    let obj = doc.as_object_mut().ok_or("not a JSON object")?;
    match obj.get("issuer").and_then(Value::as_str) {
        Some(i) if i == issuer => {}
        Some(i) => return Err(format!("issuer is {i:?}, expected {issuer:?}")),
        None => return Err("no issuer".into()),
    }
    for required in ["authorization_endpoint", "token_endpoint"] {
        if !obj.get(required).is_some_and(Value::is_string) {
            return Err(format!("no {required}"));
        }
    }
    if !obj.contains_key("code_challenge_methods_supported") {
        obj.insert("code_challenge_methods_supported".into(), json!(["S256"]));
    }
    Ok(doc)
}

/// The path of the IdP issuer URL (`""` for an issuer at its origin's root).
fn issuer_path(config: &Config) -> Option<String> {
    let idp = config.idp.as_ref()?;
    let url = url::Url::parse(&idp.issuer).ok()?;
    Some(url.path().trim_end_matches('/').to_string())
}

/// The protected-resource metadata of one server.
pub fn protected_resource(config: &Config, server: &Server) -> AppResult<Value> {
    let authorization_servers = match config.auth_mode {
        AuthMode::Broker => vec![config.public_url().to_string()],
        AuthMode::Direct => match &config.idp {
            Some(idp) => vec![idp.issuer.clone()],
            None => {
                return Err(AppError::Unavailable(
                    "direct mode needs an identity provider: set PORTCULLIS_IDP_ISSUER".into(),
                ))
            }
        },
    };
    Ok(json!({
        "resource": server.mcp_url(config.public_url()),
        "resource_name": server.name,
        "authorization_servers": authorization_servers,
        "scopes_supported": config.advertised_scopes,
        "bearer_methods_supported": ["header"],
    }))
}

fn document(value: Value, max_age: u64) -> Response {
    let mut response = Json(value).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={max_age}"))
            .unwrap_or(HeaderValue::from_static("no-cache")),
    );
    response
}

/// Finds the server whose metadata lives at `suffix` (the path after the well-known prefix,
/// or before it for the path-appending form).
async fn server_for(state: &AppState, suffix: &str) -> AppResult<Server> {
    // Unauthenticated and fetched by every client on connect: look the server up by path
    // instead of reading the whole registry (measured: ~8 µs per registered server).
    let suffix = suffix.trim_end_matches('/');
    let public_url = state.public_url();
    // `<path>/mcp` is the usual MCP URL, so that lookup goes first (one query for most clients).
    if let Some(base) = suffix.strip_suffix("/mcp") {
        if let Some(server) = state.db.get_server(base).await? {
            return Ok(server);
        }
    }
    if let Some(server) = state.db.get_server(suffix).await? {
        return Ok(server);
    }
    // A custom `mcp_endpoint` puts the MCP URL elsewhere; only those servers need a look.
    state
        .db
        .servers_with_endpoint()
        .await?
        .into_iter()
        .find(|s| s.mcp_url_path(public_url) == suffix)
        .ok_or_else(|| AppError::NotFound(format!("no registered MCP server at {suffix}")))
}

/// `GET /.well-known/oauth-protected-resource`: the one server's document on a single-server
/// host.
pub async fn prm_root(State(state): State<AppState>) -> AppResult<Response> {
    let servers = state.db.list_servers().await?;
    match servers.as_slice() {
        [only] => Ok(document(protected_resource(&state.config, only)?, 300)),
        [] => Err(AppError::NotFound("no MCP server is registered".into())),
        _ => Err(AppError::NotFound(format!(
            "several MCP servers are registered: use {PRM}/<server path>"
        ))),
    }
}

/// `GET /.well-known/oauth-protected-resource/{*path}`.
pub async fn prm_path(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> AppResult<Response> {
    let server = server_for(&state, &format!("/{path}")).await?;
    Ok(document(protected_resource(&state.config, &server)?, 300))
}

async fn as_document(state: &AppState) -> AppResult<Response> {
    if state.config.auth_mode == AuthMode::Broker {
        return Err(AppError::NotFound(
            "broker mode: the built-in authorization server is not available yet".into(),
        ));
    }
    let doc = state.idp_metadata.get(&state.config).await?;
    Ok(document(doc, state.config.idp_metadata_ttl.as_secs()))
}

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`
/// (the IdP's document, whatever the issuer's path: clients that fall back to our origin
/// find it).
pub async fn as_root(State(state): State<AppState>) -> AppResult<Response> {
    as_document(&state).await
}

/// `GET /.well-known/oauth-authorization-server/{*issuer_path}` and
/// `/.well-known/openid-configuration/{*issuer_path}` (RFC 8414 / OIDC path insertion).
pub async fn as_path(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> AppResult<Response> {
    let wanted = format!("/{}", path.trim_end_matches('/'));
    if issuer_path(&state.config).as_deref() != Some(wanted.as_str()) {
        return Err(AppError::NotFound(format!(
            "no authorization server with issuer path {wanted}"
        )));
    }
    as_document(&state).await
}

/// Fallback for paths no route matched: `<issuer path>/.well-known/openid-configuration`
/// (OIDC path appending) and `<server path>/.well-known/oauth-protected-resource`; anything
/// else is a JSON 404.
pub async fn fallback(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let is_preflight = request.method() == Method::OPTIONS;
    let result = async {
        if let Some(prefix) = path.strip_suffix(OIDC) {
            if !prefix.is_empty() && issuer_path(&state.config).as_deref() == Some(prefix) {
                return Ok(with_cors(if is_preflight {
                    preflight().await
                } else {
                    as_document(&state).await?
                }));
            }
        }
        if let Some(prefix) = path.strip_suffix(PRM) {
            if !prefix.is_empty() {
                let server = server_for(&state, prefix).await?;
                return Ok(with_cors(if is_preflight {
                    preflight().await
                } else {
                    document(protected_resource(&state.config, &server)?, 300)
                }));
            }
        }
        Err(AppError::NotFound(format!("no route for {path}")))
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) if path.contains("/.well-known/") => with_cors(e.into_response()),
        Err(e) => e.into_response(),
    }
}

/// `OPTIONS` on a metadata document (CORS preflight).
pub async fn preflight() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("mcp-protocol-version, content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    r
}

pub fn with_cors(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// Layer for the metadata routes.
pub async fn cors(response: Response) -> Response {
    with_cors(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize() {
        let doc = json!({"issuer": "https://idp", "authorization_endpoint": "https://idp/a", "token_endpoint": "https://idp/t"});
        let n = normalize_as_metadata(doc.clone(), "https://idp").unwrap();
        assert_eq!(n["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(n["authorization_endpoint"], "https://idp/a");
        let kept = json!({"issuer": "https://idp", "authorization_endpoint": "a", "token_endpoint": "t", "code_challenge_methods_supported": ["plain", "S256"]});
        assert_eq!(
            normalize_as_metadata(kept, "https://idp").unwrap()["code_challenge_methods_supported"],
            json!(["plain", "S256"])
        );
        assert!(normalize_as_metadata(doc.clone(), "https://other")
            .unwrap_err()
            .contains("issuer"));
        assert!(normalize_as_metadata(json!([1]), "https://idp").is_err());
        assert!(normalize_as_metadata(json!({"issuer": "https://idp"}), "https://idp").is_err());
    }
}
