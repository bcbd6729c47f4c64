//! The discovery documents' routes, served without authentication and with CORS `*`:
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

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::error::{AppError, AppResult};
use super::extract::ApiPath;
use super::state::AppState;
use crate::discovery::{issuer_path, protected_resource, OIDC, PRM};
use crate::registry::Server;

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
    ApiPath(path): ApiPath<String>,
) -> AppResult<Response> {
    let server = server_for(&state, &format!("/{path}")).await?;
    Ok(document(protected_resource(&state.config, &server)?, 300))
}

async fn as_document(state: &AppState) -> AppResult<Response> {
    if let Some(server) = &state.authorization_server {
        return Ok(document(server.metadata(), 300));
    }
    let doc = state.idp_metadata.get(state.config.idp.as_ref()).await?;
    Ok(document(doc, state.idp_metadata.ttl().as_secs()))
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
    ApiPath(path): ApiPath<String>,
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
