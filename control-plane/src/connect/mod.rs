//! Connect configs: what a person pastes into their coding assistant to reach a registered MCP
//! server, already set up for the login method that assistant can use with this IdP.
//!
//! Everything here except [`discovery`] is pure: [`render`] takes the server as registered, the
//! registry settings and the IdP's capabilities (found out from its metadata by
//! [`discover_capabilities`], cached by [`CapabilityCache`]) and returns a [`ConnectConfig`]:
//! the resolved URL and client id, the rendered config per assistant, and a warning for every
//! case that cannot work as configured. `docs/connect.md` is the user-facing description.
//!
//! A route serving `GET /api/servers/{path}/connect-config?ide=…` does, in short:
//! parse `ide` with `Ide::from_str` (400 on error); build a [`ServerEntry`] from the stored server
//! and [`ConnectSettings`] from the configuration (with [`StaticToken::Visible`] only for a caller
//! allowed to see the token); get the IdP's capabilities from a shared [`CapabilityCache`]
//! (`cache.get(issuer).await.ok()`, then `with_strict_redirects(…)` from the operator's setting;
//! `None` on failure, which [`render`] reports as a warning); and answer with
//! `render(ConnectRequest { … })` serialised as JSON.
//! The HTTP edge's connect-config handler is that route. The URL rules ([`mcp_url`]) are the registry's
//! (`crate::registry::resource_url`), the same the protected-resource `resource` comes from.

mod discovery;
mod ide;
mod quote;
mod render;

pub use discovery::{
    discover_capabilities, discover_capabilities_with, metadata_candidates, CapabilityCache,
    DiscoveryError,
};
pub use ide::{Ide, IdeSupport, ParseIdeError};
pub use quote::shell_quote;
// The URL rules are the registry's (RFC 8707: the URL is the token audience); connect
// configs carry the same string.
pub use crate::registry::resource_url::{
    auto_append_mcp_path, mcp_url, AppendSource, ResolvedUrl, ServerEntry,
};

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};
use url::Url;

/// Env var name the rendered configs use for a static gateway token (the name the reference
/// registry's Codex fallback uses).
pub const TOKEN_ENV_VAR: &str = "MCP_AUTH_TOKEN";

/// Whether a static gateway token may be handed out when no login method works.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StaticToken {
    /// The operator does not allow the fallback.
    #[default]
    Disabled,
    /// Allowed, but this caller may not see the token: configs carry a placeholder.
    Hidden,
    /// Allowed and this caller may see it.
    Visible(String),
}

/// Registry-wide settings that shape connect configs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectSettings {
    /// Base URL clients reach the gateway at, e.g. `https://gateway.example.com`.
    pub public_url: String,
    /// `IDE_OAUTH_CLIENT_ID`: the registry-wide pre-registered public client.
    pub ide_oauth_client_id: Option<String>,
    /// `IDE_OAUTH_CALLBACK_PORT`; `None` or `Some(0)` = unset.
    pub ide_oauth_callback_port: Option<u16>,
    /// `MCP_ADVERTISED_SCOPES`, split on whitespace.
    pub advertised_scopes: Vec<String>,
    pub static_token: StaticToken,
    /// The operator said this IdP offers DCR (e.g. marked the provider as Keycloak). Never used to
    /// decide the login method, only to warn when the metadata disagrees.
    pub expect_dcr: bool,
    /// What the IdP does that no client can work around in direct mode (from its profile);
    /// empty in broker mode, where the control plane deals with the IdP.
    pub idp_quirks: IdpQuirks,
}

/// IdP behaviour that breaks logins or tokens in direct mode, each with what would work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdpQuirks {
    /// The IdP's name (`Entra ID`, `Keycloak`, …).
    pub label: String,
    /// It refuses RFC 8707 `resource`, which every MCP client sends (Entra: AADSTS9010010).
    pub refuses_resource: bool,
    /// Why every token would be refused for its audience, and what to set.
    pub audience_problem: Option<String>,
    /// An accepted audience every token of the realm carries (Keycloak's `account`).
    pub weak_audience: Option<String>,
}

impl IdpQuirks {
    /// What the configured IdP (its profile and settings) does to direct-mode logins.
    pub fn of(idp: &crate::config::IdpConfig) -> IdpQuirks {
        IdpQuirks {
            label: idp.profile.label().to_string(),
            refuses_resource: !idp.accepts_resource,
            audience_problem: idp.audience_problem(),
            weak_audience: idp.weak_audience().map(str::to_string),
        }
    }
}

/// What the IdP (the authorization server MCP clients log in at) can do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IdpCapabilities {
    /// `issuer` from the metadata.
    pub issuer: Option<String>,
    /// RFC 7591 dynamic client registration endpoint, when advertised.
    #[serde(serialize_with = "ser_opt_url")]
    pub registration_endpoint: Option<Url>,
    /// `client_id_metadata_document_supported: true` in the metadata.
    pub cimd_supported: bool,
    /// The IdP matches redirect URIs literally, port included (Okta, Cognito, Entra). Metadata does
    /// not say this: the operator does. Discovery leaves it `false`.
    pub strict_redirects: bool,
}

impl IdpCapabilities {
    pub fn dcr_supported(&self) -> bool {
        self.registration_endpoint.is_some()
    }
    pub fn with_strict_redirects(mut self, strict: bool) -> Self {
        self.strict_redirects = strict;
        self
    }
}

fn ser_opt_url<S: Serializer>(u: &Option<Url>, s: S) -> Result<S::Ok, S::Error> {
    match u {
        Some(u) => s.serialize_some(u.as_str()),
        None => s.serialize_none(),
    }
}

/// How the person logs in from a given assistant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginMethod {
    /// The assistant registers itself at the IdP (RFC 7591).
    Dcr,
    /// The assistant's client id is the URL of its metadata document.
    Cimd,
    /// The pre-registered public client id (`oauth_client_id` / `IDE_OAUTH_CLIENT_ID`).
    PreRegistered,
    /// A shared gateway token in a header (the operator's fallback).
    StaticToken,
    /// No working login: the config has no auth and a warning says why.
    None,
}

/// Machine-readable warning codes (stable; documented in `docs/connect.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningCode {
    IdpMetadataUnavailable,
    DcrExpectedButAbsent,
    CallbackPortRequired,
    CallbackPortUnpinnable,
    CallbackPortIgnored,
    ClientIdUnsupported,
    ClientIdManualEntry,
    NoLoginMethod,
    StaticTokenFallback,
    StaticTokenHidden,
    NameAdjusted,
    InsecureUrl,
    IdpRefusesResource,
    IdpAudienceMismatch,
    WeakAudience,
    CallbackPathUnmatchable,
}

impl WarningCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdpMetadataUnavailable => "idp_metadata_unavailable",
            Self::DcrExpectedButAbsent => "dcr_expected_but_absent",
            Self::CallbackPortRequired => "callback_port_required",
            Self::CallbackPortUnpinnable => "callback_port_unpinnable",
            Self::CallbackPortIgnored => "callback_port_ignored",
            Self::ClientIdUnsupported => "client_id_unsupported",
            Self::ClientIdManualEntry => "client_id_manual_entry",
            Self::NoLoginMethod => "no_login_method",
            Self::StaticTokenFallback => "static_token_fallback",
            Self::StaticTokenHidden => "static_token_hidden",
            Self::NameAdjusted => "name_adjusted",
            Self::InsecureUrl => "insecure_url",
            Self::IdpRefusesResource => "idp_refuses_resource",
            Self::IdpAudienceMismatch => "idp_audience_mismatch",
            Self::WeakAudience => "weak_audience",
            Self::CallbackPathUnmatchable => "callback_path_unmatchable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub code: WarningCode,
    /// The assistant this warning is about; `None` for warnings about the server or IdP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ide: Option<Ide>,
    pub message: String,
}

/// The form a rendered config takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A shell command line (POSIX quoting).
    Shell,
    Json,
    Yaml,
}

/// The config for one assistant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdeConfig {
    pub ide: Ide,
    /// Human name, e.g. "Claude Code".
    pub label: &'static str,
    pub login_method: LoginMethod,
    pub format: Format,
    /// Where it goes: a file path, or "terminal".
    pub target: &'static str,
    /// What to paste: the command line(s) or the JSON/YAML document.
    pub text: String,
    /// For shell commands: the command's argv (what `text`'s command line splits into).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// Environment the command or config expects (e.g. the static token's variable).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    pub warnings: Vec<Warning>,
}

/// The resolved connect config for one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectConfig {
    /// The name the configs register the server under (letters, digits, `-`, `_`).
    pub name: String,
    /// The exact URL clients connect to.
    pub url: String,
    /// Per-server `oauth_client_id`, else `IDE_OAUTH_CLIENT_ID`.
    pub oauth_client_id: Option<String>,
    pub append_mcp_path: bool,
    pub append_mcp_path_source: AppendSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_port: Option<u16>,
    pub scopes: Vec<String>,
    /// The IdP's capabilities as used; `None` when they could not be found out.
    pub idp: Option<IdpCapabilities>,
    /// The login method when exactly one assistant was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_method: Option<LoginMethod>,
    /// Per assistant (keys: `cursor`, `claude-code`, …).
    pub rendered: BTreeMap<Ide, IdeConfig>,
    /// Every warning: the general ones, then each assistant's.
    pub warnings: Vec<Warning>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnectError {
    #[error("public_url {0:?} is not an absolute http(s) URL")]
    BadPublicUrl(String),
    #[error("mcp_endpoint {0:?} is neither an absolute http(s) URL nor a path starting with '/'")]
    BadMcpEndpoint(String),
}

/// Everything [`render`] needs.
#[derive(Debug, Clone, Copy)]
pub struct ConnectRequest<'a> {
    pub server: &'a ServerEntry,
    pub settings: &'a ConnectSettings,
    /// `None` when the IdP's metadata could not be fetched (DCR and CIMD are then not assumed).
    pub idp: Option<&'a IdpCapabilities>,
    /// One assistant, or `None` for all of them.
    pub ide: Option<Ide>,
}

fn is_http_url(u: &Url) -> bool {
    matches!(u.scheme(), "http" | "https") && u.host().is_some()
}

/// [`mcp_url`], validated: `public_url` and the result must be absolute http(s) URLs.
pub fn resolve_url(
    server: &ServerEntry,
    settings: &ConnectSettings,
) -> Result<ResolvedUrl, ConnectError> {
    Url::parse(settings.public_url.trim())
        .ok()
        .filter(is_http_url)
        .ok_or_else(|| ConnectError::BadPublicUrl(settings.public_url.clone()))?;
    let resolved = mcp_url(server, &settings.public_url);
    if Url::parse(&resolved.url).ok().filter(is_http_url).is_none() {
        return Err(match resolved.source {
            AppendSource::McpEndpoint => ConnectError::BadMcpEndpoint(
                server
                    .mcp_endpoint
                    .as_deref()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            ),
            _ => ConnectError::BadPublicUrl(resolved.url),
        });
    }
    Ok(resolved)
}

/// Per-server `oauth_client_id`, else `IDE_OAUTH_CLIENT_ID` (blank values count as unset).
pub fn resolve_client_id(server: &ServerEntry, settings: &ConnectSettings) -> Option<String> {
    let nonblank = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    nonblank(&server.oauth_client_id).or_else(|| nonblank(&settings.ide_oauth_client_id))
}

/// The name every assistant accepts (Claude Code and Codex allow letters, digits, `-`, `_`):
/// other characters become `-`, runs collapse, ends are trimmed; falls back to the path, then
/// `mcp-server`.
pub fn config_name(server: &ServerEntry) -> String {
    fn slug(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            if c.is_ascii_alphanumeric() || c == '_' {
                out.push(c);
            } else if !out.ends_with('-') {
                out.push('-');
            }
        }
        out.trim_matches('-').to_string()
    }
    let n = slug(&server.name);
    if !n.is_empty() {
        return n;
    }
    let p = slug(&server.path);
    if !p.is_empty() {
        return p;
    }
    "mcp-server".to_string()
}

/// Renders the connect config for one assistant (or all of them).
pub fn render(req: ConnectRequest<'_>) -> Result<ConnectConfig, ConnectError> {
    render::render(req)
}
