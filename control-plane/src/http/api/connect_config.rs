//! `GET /api/servers/{path}/connect-config[?ide=…]` (and `/api/servers/{prefix}/{name}/…`): the
//! connect configs of one server, rendered by [`crate::connect`]. Compatible with the reference
//! registry's route: the answer carries the resolved `oauth_client_id` (the server's, else
//! `IDE_OAUTH_CLIENT_ID`), `append_mcp_path`, the URL, the config per assistant and `warnings`.
//! See `docs/connect.md`.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::servers::{visible_server, ServerPath};
use crate::auth::Caller;
use crate::config::{AuthMode, Config};
use crate::connect::{
    self, ConnectRequest, ConnectSettings, Ide, IdpCapabilities, IdpQuirks, StaticToken,
};
use crate::http::error::{echo, AppError, AppResult};
use crate::http::extract::ApiQuery;
use crate::http::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectQuery {
    /// One assistant (`claude-code`, `cursor`, …); absent or empty = all of them.
    ide: Option<String>,
}

/// `?ide=` → one assistant, or `None` for all; a value no assistant answers to is a 400 that
/// names the parameter.
fn parse_ide(ide: Option<&str>) -> AppResult<Option<Ide>> {
    match ide.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.parse::<Ide>().map(Some).map_err(|_| {
            // The value is echoed cut (it may be kilobytes long).
            AppError::BadRequest(format!(
                "ide: unknown assistant {}; expected one of: {}",
                echo(s),
                Ide::ALL.map(Ide::as_str).join(", ")
            ))
        }),
    }
}

/// The registry settings connect configs are rendered with, for this caller: the static token
/// is visible only to admins, and only when the operator enabled the fallback.
pub fn connect_settings(config: &Config, caller: &Caller) -> ConnectSettings {
    let static_token = match (config.static_token_fallback, &config.static_token) {
        (true, Some(token)) if caller.admin => StaticToken::Visible(token.expose().to_string()),
        (true, Some(_)) => StaticToken::Hidden,
        _ => StaticToken::Disabled,
    };
    ConnectSettings {
        public_url: config.public_url().to_string(),
        ide_oauth_client_id: config.ide_oauth_client_id.clone(),
        ide_oauth_callback_port: config.ide_oauth_callback_port,
        advertised_scopes: config.advertised_scopes.clone(),
        static_token,
        expect_dcr: config.idp_expect_dcr,
        idp_quirks: match (config.auth_mode, &config.idp) {
            (AuthMode::Direct, Some(idp)) => IdpQuirks::of(idp),
            _ => IdpQuirks::default(),
        },
    }
}

/// Where the IdP's capabilities are looked up: `PORTCULLIS_IDP_DISCOVERY_URL` when the operator
/// set one, else the issuer itself (the metadata locations in the MCP specification's order,
/// with the issuer check). `None` in broker mode or without an IdP.
pub fn capability_source(config: &Config) -> Option<&str> {
    if config.auth_mode != AuthMode::Direct {
        return None;
    }
    let idp = config.idp.as_ref()?;
    let derived = format!(
        "{}/.well-known/openid-configuration",
        idp.issuer.trim_end_matches('/')
    );
    Some(if idp.discovery_url == derived {
        idp.issuer.as_str()
    } else {
        idp.discovery_url.as_str()
    })
}

/// The IdP's capabilities from the shared cache; `None` when they cannot be found out (the
/// rendered config then says so in a warning; the request does not fail).
async fn idp_capabilities(state: &AppState) -> Option<IdpCapabilities> {
    // Broker mode: the authorization server is ours, and we know what it offers (DCR unless
    // turned off; any loopback port, so no pinned callback).
    if let Some(server) = &state.authorization_server {
        let metadata = server.metadata();
        return Some(IdpCapabilities {
            issuer: Some(server.issuer().to_string()),
            registration_endpoint: metadata["registration_endpoint"]
                .as_str()
                .and_then(|u| url::Url::parse(u).ok()),
            cimd_supported: metadata["client_id_metadata_document_supported"] == true,
            strict_redirects: false,
        });
    }
    let source = capability_source(&state.config)?;
    match state.idp_capabilities.get(source).await {
        Ok(caps) => Some(caps.with_strict_redirects(state.config.idp_strict_redirects)),
        Err(e) => {
            tracing::warn!(error = %e, "IdP capabilities unavailable for connect configs");
            None
        }
    }
}

/// `GET /api/servers/{path}/connect-config`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ServerPath(path): ServerPath,
    ApiQuery(query): ApiQuery<ConnectQuery>,
) -> AppResult<Response> {
    let ide = parse_ide(query.ide.as_deref())?;
    let server = visible_server(&state, &caller, &path).await?;
    let entry = server.connect_entry();
    let settings = connect_settings(&state.config, &caller);
    let idp = idp_capabilities(&state).await;
    let rendered = connect::render(ConnectRequest {
        server: &entry,
        settings: &settings,
        idp: idp.as_ref(),
        ide,
    })
    .map_err(|e| AppError::Internal(anyhow::Error::new(e).context(format!("rendering {path}"))))?;
    let mut response = Json(rendered).into_response();
    // May carry the static token (for admins): never stored by caches.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
