//! Configuration of `portcullis serve`, read from the environment.
//!
//! [`Config::from_lookup`] takes any `name -> value` function so tests inject values without
//! touching the process environment; [`Config::from_env`] is the real thing.

mod audit;
mod broker;
mod idp_keys;
pub mod idp_profile;
pub mod xds;

pub use audit::AuditConfig;
pub use broker::{BrokerConfig, CimdConfig, CimdMode};
pub use idp_keys::IdpKeysConfig;
pub use idp_profile::{AudienceStyle, IdpProfile};
pub use xds::XdsConfig;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use sha2::{Digest as _, Sha256};

/// Who is the authorization server MCP clients are sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// The upstream IdP (its issuer goes into `authorization_servers`).
    Direct,
    /// The control plane itself (`PORTCULLIS_PUBLIC_URL` goes into `authorization_servers`).
    Broker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The upstream OIDC identity provider.
#[derive(Debug, Clone)]
pub struct IdpConfig {
    /// Exact `iss` of its tokens (`PORTCULLIS_IDP_ISSUER`).
    pub issuer: String,
    /// Its JWKS (`PORTCULLIS_IDP_JWKS_FILE`), when tokens are to be verified here.
    pub jwks: Option<serde_json::Value>,
    /// `aud` values the MCP servers accept besides their own URL (`PORTCULLIS_IDP_AUDIENCE`,
    /// comma-separated): the policy snapshot's `audiences`.
    pub audiences: Vec<String>,
    /// `aud` values the API accepts (`PORTCULLIS_API_AUDIENCE`, comma-separated). Unset: the
    /// same as `audiences` (how one setting served both before; see
    /// [`IdpConfig::api_audience_is_shared`]).
    pub api_audiences: Vec<String>,
    /// `true` when `PORTCULLIS_API_AUDIENCE` is unset and the API takes `PORTCULLIS_IDP_AUDIENCE`:
    /// a token for the MCP servers is then also an API credential (warned at start).
    pub api_audience_is_shared: bool,
    /// Accepted signature algorithms (`PORTCULLIS_IDP_ALGORITHMS`).
    pub algorithms: Vec<String>,
    /// Claim holding the groups (`PORTCULLIS_IDP_GROUPS_CLAIM`, default `groups`).
    pub groups_claim: String,
    /// Where its OIDC discovery document is (`PORTCULLIS_IDP_DISCOVERY_URL`, default
    /// `<issuer>/.well-known/openid-configuration`).
    pub discovery_url: String,
    /// `PORTCULLIS_IDP_PROFILE` (default `generic`): the defaults below come from its row of
    /// [`IdpProfile::traits`].
    pub profile: IdpProfile,
    /// `client_id` values accepted on tokens without `aud` (`PORTCULLIS_IDP_CLIENT_IDS`,
    /// comma-separated; required for Cognito).
    pub client_ids: Vec<String>,
    /// Required `token_use` claim (`PORTCULLIS_IDP_TOKEN_USE`; Cognito: `access`; `none`: no
    /// check).
    pub token_use: Option<String>,
    /// Whether the IdP accepts RFC 8707 `resource` (`PORTCULLIS_IDP_ACCEPTS_RESOURCE`).
    pub accepts_resource: bool,
    /// The prefix the IdP wants on requested scopes (`PORTCULLIS_IDP_SCOPE_PREFIX`, e.g.
    /// `api://<app id>/` on Entra); `None` when scopes go as they are.
    pub scope_prefix: Option<String>,
}

impl IdpConfig {
    /// How its access tokens name whom they are for: the profile's (not a setting of its own;
    /// the audiences or client ids configured say which values).
    pub fn audience_style(&self) -> AudienceStyle {
        self.profile.traits().audience
    }

    /// Refuses an IdP set-up whose tokens no filter could accept, naming what to set.
    fn check_profile(&self) -> anyhow::Result<()> {
        let label = self.profile.label();
        if self.audience_style() == AudienceStyle::ClientId && self.client_ids.is_empty() {
            bail!(
                "PORTCULLIS_IDP_CLIENT_IDS: required with PORTCULLIS_IDP_PROFILE={}: {label}'s \
                 access tokens carry no aud, only the client they were issued to; list the app \
                 client ids whose tokens the MCP servers accept",
                self.profile
            );
        }
        Ok(())
    }

    /// Why, with this set-up, the filters would refuse every token of this IdP (the operator
    /// must act; logged at start, shown by doctor and the connect configs). `None` when the
    /// tokens can be accepted.
    pub fn audience_problem(&self) -> Option<String> {
        let label = self.profile.label();
        match self.audience_style() {
            AudienceStyle::Fixed if self.audiences.is_empty() => Some(format!(
                "{label} does not put the MCP server's URL in aud (it ignores RFC 8707 resource): \
                 every token would be refused as issued for another audience. Give its tokens an \
                 audience of their own ({}) and set PORTCULLIS_IDP_AUDIENCE to it",
                match self.profile {
                    IdpProfile::Keycloak => "an Audience mapper on the client",
                    IdpProfile::Okta => "the custom authorization server's audience",
                    IdpProfile::Entra => "the API application's id or App ID URI",
                    _ => "see its documentation",
                }
            )),
            _ => None,
        }
    }

    /// An accepted audience that every token of the realm carries (Keycloak's `account`): any
    /// client's token would be accepted by the MCP servers.
    pub fn weak_audience(&self) -> Option<&str> {
        (self.profile == IdpProfile::Keycloak)
            .then(|| self.audiences.iter().find(|a| a.as_str() == "account"))
            .flatten()
            .map(String::as_str)
    }
}

/// Everything `portcullis serve` needs.
#[derive(Clone)]
pub struct Config {
    /// `PORTCULLIS_DATA_DIR` (default `.portcullis/data`): where the SQLite file lives.
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: `postgres://…` selects PostgreSQL; `sqlite:…` a specific SQLite file.
    pub database_url: Option<String>,
    /// `PORTCULLIS_PUBLIC_URL`: the origin MCP clients connect to (Envoy), no path.
    /// `None` → `http://<listen address>`, filled in by `serve`.
    pub public_url: Option<String>,
    /// SHA-256 of the bootstrap admin token (`PORTCULLIS_ADMIN_TOKEN` hashed at start, or
    /// `PORTCULLIS_ADMIN_TOKEN_SHA256` as lowercase hex). The token itself is never kept.
    pub admin_token_sha256: Option<[u8; 32]>,
    /// `PORTCULLIS_ADMIN_SCOPE` (default `mcp-admin`): registry scope that makes a caller admin.
    pub admin_scope: String,
    /// `PORTCULLIS_AUTH_MODE`: `direct` (default) or `broker`.
    pub auth_mode: AuthMode,
    pub idp: Option<IdpConfig>,
    /// `MCP_ADVERTISED_SCOPES` (default `openid email profile offline_access`).
    pub advertised_scopes: Vec<String>,
    /// `IDE_OAUTH_CLIENT_ID`: registry-wide public client id for the connect configs.
    pub ide_oauth_client_id: Option<String>,
    /// `IDE_OAUTH_CALLBACK_PORT` (0 or unset = none).
    pub ide_oauth_callback_port: Option<u16>,
    /// `PORTCULLIS_LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `PORTCULLIS_MAX_BODY_BYTES` (default 65536): larger API request bodies get 413.
    pub max_body_bytes: usize,
    /// `PORTCULLIS_IDP_METADATA_TTL_SECONDS` (default 300): how long the IdP's discovery
    /// document (and the capabilities connect configs are built for) is cached.
    pub idp_metadata_ttl: Duration,
    /// `PORTCULLIS_STATIC_TOKEN_FALLBACK` (default off): connect configs may fall back to a
    /// shared static gateway token when an assistant has no working login method.
    pub static_token_fallback: bool,
    /// `PORTCULLIS_STATIC_TOKEN`: that token. Only admins see it in connect configs; never
    /// logged (its `Debug` is redacted).
    pub static_token: Option<Secret>,
    /// `PORTCULLIS_IDP_STRICT_REDIRECTS` (default false): the IdP matches redirect URIs
    /// literally, port included (Okta, Cognito, Entra).
    pub idp_strict_redirects: bool,
    /// `PORTCULLIS_IDP_EXPECT_DCR` (default false): the operator expects the IdP to offer
    /// dynamic client registration (connect configs warn when its metadata disagrees).
    pub idp_expect_dcr: bool,
    /// SHA-256 of the token Envoy's sync service presents on `/v1/policy` and `/v1/audit`
    /// (`PORTCULLIS_SYNC_TOKEN`, or `PORTCULLIS_SYNC_TOKEN_SHA256` as hex). Unset: those
    /// endpoints answer 503.
    pub sync_token_sha256: Option<[u8; 32]>,
    /// `PORTCULLIS_AUDIT_*`.
    pub audit: AuditConfig,
    /// `PORTCULLIS_IDP_JWKS_*`, `PORTCULLIS_IDP_KEY_OVERLAP_SECONDS`: fetching the IdP's keys.
    pub idp_keys: IdpKeysConfig,
    /// `PORTCULLIS_XDS_*`, `PORTCULLIS_CONTROL_PLANE_CLUSTER`: Envoy's routes and clusters.
    pub xds: XdsConfig,
    /// Broker mode's authorization server: secret key, token lifetime, rate limits.
    pub broker: BrokerConfig,
}

/// A secret value whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("database", &self.database_kind())
            .field("public_url", &self.public_url)
            .field("admin_token", &self.admin_token_sha256.map(|_| "<set>"))
            .field("admin_scope", &self.admin_scope)
            .field("auth_mode", &self.auth_mode)
            .field("idp_issuer", &self.idp.as_ref().map(|i| &i.issuer))
            .field("advertised_scopes", &self.advertised_scopes)
            .field("static_token_fallback", &self.static_token_fallback)
            .field("static_token", &self.static_token)
            .field("idp_strict_redirects", &self.idp_strict_redirects)
            .field("idp_expect_dcr", &self.idp_expect_dcr)
            .field("sync_token", &self.sync_token_sha256.map(|_| "<set>"))
            .field("audit", &self.audit)
            .field("idp_keys", &self.idp_keys)
            .field("xds", &self.xds)
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

pub const DEFAULT_ADVERTISED_SCOPES: &str = "openid email profile offline_access";
pub const DEFAULT_ALGORITHMS: &str = "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,EdDSA";

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(".portcullis/data"),
            database_url: None,
            public_url: None,
            admin_token_sha256: None,
            admin_scope: "mcp-admin".into(),
            auth_mode: AuthMode::Direct,
            idp: None,
            advertised_scopes: split_list(DEFAULT_ADVERTISED_SCOPES, ' '),
            ide_oauth_client_id: None,
            ide_oauth_callback_port: None,
            log_format: LogFormat::Text,
            max_body_bytes: 64 * 1024,
            idp_metadata_ttl: Duration::from_secs(300),
            static_token_fallback: false,
            static_token: None,
            idp_strict_redirects: false,
            idp_expect_dcr: false,
            sync_token_sha256: None,
            audit: AuditConfig::default(),
            idp_keys: IdpKeysConfig::default(),
            xds: XdsConfig::default(),
            broker: BrokerConfig::default(),
        }
    }
}

/// SHA-256 of a secret, as stored and compared.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn split_list(text: &str, sep: char) -> Vec<String> {
    text.split(sep)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off` (any case); unset = `default`.
fn parse_bool(name: &str, value: Option<String>, default: bool) -> anyhow::Result<bool> {
    let Some(v) = value else {
        return Ok(default);
    };
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => bail!("{name}: expected true or false, got {v:?}"),
    }
}

/// A secret from `<name>` (hashed at once; at least 16 characters) or `<name>_SHA256` (hex).
fn hashed_secret(
    get: &dyn Fn(&str) -> Option<String>,
    name: &str,
) -> anyhow::Result<Option<[u8; 32]>> {
    let hashed_name = format!("{name}_SHA256");
    Ok(match (get(name), get(&hashed_name)) {
        (Some(_), Some(_)) => bail!("set {name} or {hashed_name}, not both"),
        (Some(token), None) => {
            if token.len() < 16 {
                bail!("{name}: use at least 16 characters");
            }
            Some(sha256(token.as_bytes()))
        }
        (None, Some(hex)) => Some(
            parse_hex32(hex.trim())
                .with_context(|| format!("{hashed_name}: expected 64 lowercase hex digits"))?,
        ),
        (None, None) => None,
    })
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

impl Config {
    /// `scopes_supported` of the protected-resource metadata (and the 401 challenge's
    /// `scope`). In broker mode without `offline_access` (MCP 2026-07-28: a client asks the
    /// authorization server for it, whose metadata lists it; the broker gives refresh tokens
    /// by grant type, not by that scope); in direct mode as advertised, since clients of
    /// 2025-11-25 ask the IdP for what the resource lists and would otherwise get no refresh
    /// token from Keycloak or Okta.
    pub fn resource_scopes(&self) -> Vec<String> {
        let mut scopes = self.advertised_scopes.clone();
        if self.auth_mode == AuthMode::Broker {
            scopes.retain(|s| s != "offline_access");
        }
        scopes
    }

    /// Reads the process environment.
    pub fn from_env() -> anyhow::Result<Config> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `get` (empty values count as unset).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let mut c = Config::default();
        if let Some(dir) = get("PORTCULLIS_DATA_DIR") {
            c.data_dir = PathBuf::from(dir);
        }
        c.database_url = get("DATABASE_URL");
        if let Some(url) = get("PORTCULLIS_PUBLIC_URL") {
            c.public_url = Some(normalize_public_url(&url).context("PORTCULLIS_PUBLIC_URL")?);
        }
        c.admin_token_sha256 = hashed_secret(&get, "PORTCULLIS_ADMIN_TOKEN")?;
        c.sync_token_sha256 = hashed_secret(&get, "PORTCULLIS_SYNC_TOKEN")?;
        c.audit = AuditConfig::from_lookup(&get)?;
        c.idp_keys = IdpKeysConfig::from_lookup(&get)?;
        c.xds = XdsConfig::from_lookup(&get)?;
        c.broker = BrokerConfig::from_lookup(&get)?;
        // Envoy authenticates to xDS with the same token as to /v1/policy.
        c.xds.token_sha256 = c.sync_token_sha256;
        if let Some(scope) = get("PORTCULLIS_ADMIN_SCOPE") {
            c.admin_scope = scope.trim().to_string();
        }
        c.auth_mode = match get("PORTCULLIS_AUTH_MODE").as_deref().map(str::trim) {
            None | Some("direct") => AuthMode::Direct,
            Some("broker") => AuthMode::Broker,
            Some(other) => bail!("PORTCULLIS_AUTH_MODE: expected direct or broker, got {other:?}"),
        };
        let profile: IdpProfile = match get("PORTCULLIS_IDP_PROFILE") {
            Some(p) => p
                .parse()
                .map_err(|e| anyhow::anyhow!("PORTCULLIS_IDP_PROFILE: {e}"))?,
            None => IdpProfile::Generic,
        };
        let traits = profile.traits();
        if let Some(issuer) = get("PORTCULLIS_IDP_ISSUER") {
            let issuer = issuer.trim().to_string();
            url::Url::parse(&issuer).context("PORTCULLIS_IDP_ISSUER: not a URL")?;
            let jwks =
                match get("PORTCULLIS_IDP_JWKS_FILE") {
                    Some(path) => {
                        let text = std::fs::read_to_string(&path)
                            .with_context(|| format!("PORTCULLIS_IDP_JWKS_FILE: reading {path}"))?;
                        Some(serde_json::from_str(&text).with_context(|| {
                            format!("PORTCULLIS_IDP_JWKS_FILE: {path} is not JSON")
                        })?)
                    }
                    None => None,
                };
            let audiences = get("PORTCULLIS_IDP_AUDIENCE")
                .map(|a| split_list(&a, ','))
                .unwrap_or_default();
            // The API's audience and the MCP servers' are separate settings; without
            // PORTCULLIS_API_AUDIENCE the API keeps taking PORTCULLIS_IDP_AUDIENCE, as before.
            let (api_audiences, api_audience_is_shared) = match get("PORTCULLIS_API_AUDIENCE") {
                Some(a) => {
                    let api = split_list(&a, ',');
                    if api.is_empty() {
                        bail!("PORTCULLIS_API_AUDIENCE: empty; unset it, or name the `aud` the API accepts");
                    }
                    if let Some(shared) = api.iter().find(|a| audiences.contains(a)) {
                        bail!("PORTCULLIS_API_AUDIENCE and PORTCULLIS_IDP_AUDIENCE share {shared:?}: a token for the MCP servers would be an API credential and the reverse; give the API an audience of its own");
                    }
                    (api, false)
                }
                None => (audiences.clone(), !audiences.is_empty()),
            };
            if jwks.is_some() && api_audiences.is_empty() {
                bail!("PORTCULLIS_API_AUDIENCE (or, as before, PORTCULLIS_IDP_AUDIENCE): required with PORTCULLIS_IDP_JWKS_FILE (tokens are always checked for whom they were issued to)");
            }
            let discovery_url = get("PORTCULLIS_IDP_DISCOVERY_URL").unwrap_or_else(|| {
                format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                )
            });
            c.idp = Some(IdpConfig {
                issuer,
                jwks,
                audiences,
                api_audiences,
                api_audience_is_shared,
                algorithms: split_list(
                    &get("PORTCULLIS_IDP_ALGORITHMS").unwrap_or_else(|| DEFAULT_ALGORITHMS.into()),
                    ',',
                ),
                groups_claim: get("PORTCULLIS_IDP_GROUPS_CLAIM")
                    .map_or_else(|| traits.groups_claim.into(), |c| c.trim().to_string()),
                discovery_url,
                profile,
                client_ids: get("PORTCULLIS_IDP_CLIENT_IDS")
                    .map(|a| split_list(&a, ','))
                    .unwrap_or_default(),
                token_use: match get("PORTCULLIS_IDP_TOKEN_USE") {
                    Some(t) if t.trim().eq_ignore_ascii_case("none") => None,
                    Some(t) => Some(t.trim().to_string()),
                    None => traits.token_use.map(str::to_string),
                },
                accepts_resource: parse_bool(
                    "PORTCULLIS_IDP_ACCEPTS_RESOURCE",
                    get("PORTCULLIS_IDP_ACCEPTS_RESOURCE"),
                    traits.accepts_resource,
                )?,
                scope_prefix: get("PORTCULLIS_IDP_SCOPE_PREFIX")
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty()),
            });
            if let Some(idp) = &c.idp {
                idp.check_profile()?;
            }
        } else if get("PORTCULLIS_IDP_JWKS_FILE").is_some() {
            bail!("PORTCULLIS_IDP_JWKS_FILE needs PORTCULLIS_IDP_ISSUER");
        }
        if let Some(scopes) = get("MCP_ADVERTISED_SCOPES") {
            c.advertised_scopes = split_list(&scopes, ' ');
        } else if !traits.offline_access {
            // Asking for a scope the IdP does not have fails the whole authorization request.
            c.advertised_scopes.retain(|s| s != "offline_access");
        }
        c.ide_oauth_client_id = get("IDE_OAUTH_CLIENT_ID").map(|s| s.trim().to_string());
        c.ide_oauth_callback_port = match get("IDE_OAUTH_CALLBACK_PORT") {
            None => None,
            Some(p) => match p.trim().parse::<u16>() {
                Ok(0) => None,
                Ok(port) => Some(port),
                Err(_) => bail!("IDE_OAUTH_CALLBACK_PORT: expected a port number, got {p:?}"),
            },
        };
        c.log_format = match get("PORTCULLIS_LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("PORTCULLIS_LOG_FORMAT: expected text or json, got {other:?}"),
        };
        if let Some(n) = get("PORTCULLIS_MAX_BODY_BYTES") {
            c.max_body_bytes = n
                .trim()
                .parse()
                .ok()
                .filter(|&n: &usize| n >= 1024)
                .context("PORTCULLIS_MAX_BODY_BYTES: expected a number of bytes >= 1024")?;
        }
        if let Some(n) = get("PORTCULLIS_IDP_METADATA_TTL_SECONDS") {
            c.idp_metadata_ttl = Duration::from_secs(
                n.trim()
                    .parse()
                    .context("PORTCULLIS_IDP_METADATA_TTL_SECONDS: expected seconds")?,
            );
        }
        c.static_token_fallback = parse_bool(
            "PORTCULLIS_STATIC_TOKEN_FALLBACK",
            get("PORTCULLIS_STATIC_TOKEN_FALLBACK"),
            false,
        )?;
        c.static_token = get("PORTCULLIS_STATIC_TOKEN").map(|t| Secret::new(t.trim()));
        if c.static_token_fallback && c.static_token.is_none() {
            bail!("PORTCULLIS_STATIC_TOKEN_FALLBACK: needs PORTCULLIS_STATIC_TOKEN (the token the fallback hands out)");
        }
        c.idp_strict_redirects = parse_bool(
            "PORTCULLIS_IDP_STRICT_REDIRECTS",
            get("PORTCULLIS_IDP_STRICT_REDIRECTS"),
            traits.strict_redirects,
        )?;
        c.idp_expect_dcr = parse_bool(
            "PORTCULLIS_IDP_EXPECT_DCR",
            get("PORTCULLIS_IDP_EXPECT_DCR"),
            traits.dcr,
        )?;
        Ok(c)
    }

    /// `postgres` or `sqlite`, for logs.
    pub fn database_kind(&self) -> &'static str {
        match &self.database_url {
            Some(u) if is_postgres_url(u) => "postgres",
            _ => "sqlite",
        }
    }

    /// The public origin, `http://127.0.0.1:8080` when nothing was configured.
    pub fn public_url(&self) -> &str {
        self.public_url
            .as_deref()
            .unwrap_or("http://127.0.0.1:8080")
    }
}

pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Checks that `url` is an http(s) origin (no path, query or fragment) and drops a trailing `/`.
pub fn normalize_public_url(url: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url.trim()).context("not a URL")?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        bail!("expected an http(s) URL, got {url:?}");
    }
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        bail!("expected an origin without path, query or fragment (like https://mcp.example.com), got {url:?}");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        bail!("credentials are not allowed in the URL");
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// The configuration these variables give (tests of this module and its children).
#[cfg(test)]
pub(crate) fn cfg(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
    let map: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from(".portcullis/data"));
        assert_eq!(c.admin_scope, "mcp-admin");
        assert_eq!(c.auth_mode, AuthMode::Direct);
        assert_eq!(
            c.advertised_scopes,
            ["openid", "email", "profile", "offline_access"]
        );
        assert_eq!(c.database_kind(), "sqlite");
        assert!(c.admin_token_sha256.is_none());
        assert!(!c.static_token_fallback);
        assert!(c.static_token.is_none());
        assert!(!c.idp_strict_redirects);
        assert!(!c.idp_expect_dcr);
    }

    #[test]
    fn connect_settings() {
        let c = cfg(&[
            ("PORTCULLIS_STATIC_TOKEN_FALLBACK", "true"),
            ("PORTCULLIS_STATIC_TOKEN", "static-gateway-token-value"),
            ("PORTCULLIS_IDP_STRICT_REDIRECTS", "yes"),
            ("PORTCULLIS_IDP_EXPECT_DCR", "1"),
        ])
        .unwrap();
        assert!(c.static_token_fallback && c.idp_strict_redirects && c.idp_expect_dcr);
        assert_eq!(
            c.static_token.as_ref().map(Secret::expose),
            Some("static-gateway-token-value")
        );
        let shown = format!("{c:?}");
        assert!(!shown.contains("static-gateway-token-value"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        // A token without the fallback is kept but unused; the fallback needs a token.
        let c = cfg(&[("PORTCULLIS_STATIC_TOKEN", "t0ken")]).unwrap();
        assert!(!c.static_token_fallback);
        for bad in [
            vec![("PORTCULLIS_STATIC_TOKEN_FALLBACK", "true")],
            vec![("PORTCULLIS_STATIC_TOKEN_FALLBACK", "maybe")],
            vec![("PORTCULLIS_IDP_STRICT_REDIRECTS", "2")],
            vec![("PORTCULLIS_IDP_EXPECT_DCR", "sure")],
        ] {
            let err = cfg(&bad).unwrap_err();
            assert!(format!("{err:#}").contains(bad[0].0), "{bad:?}: {err:#}");
        }
    }

    #[test]
    fn api_and_mcp_server_audiences_are_separate() {
        let issuer = ("PORTCULLIS_IDP_ISSUER", "https://idp.example.com");
        // Both set: each its own.
        let c = cfg(&[
            issuer,
            (
                "PORTCULLIS_API_AUDIENCE",
                "portcullis-api, portcullis-admin",
            ),
            ("PORTCULLIS_IDP_AUDIENCE", "mcp-gateway"),
        ])
        .unwrap();
        let idp = c.idp.unwrap();
        assert_eq!(idp.api_audiences, ["portcullis-api", "portcullis-admin"]);
        assert_eq!(idp.audiences, ["mcp-gateway"]);
        assert!(!idp.api_audience_is_shared);
        // Only the API's: the MCP servers accept their own URLs only.
        let idp = cfg(&[issuer, ("PORTCULLIS_API_AUDIENCE", "portcullis-api")])
            .unwrap()
            .idp
            .unwrap();
        assert_eq!(idp.api_audiences, ["portcullis-api"]);
        assert!(idp.audiences.is_empty() && !idp.api_audience_is_shared);
        // Only the old setting: both take it, as before (and the start warns).
        let idp = cfg(&[issuer, ("PORTCULLIS_IDP_AUDIENCE", "portcullis-api")])
            .unwrap()
            .idp
            .unwrap();
        assert_eq!(idp.api_audiences, ["portcullis-api"]);
        assert_eq!(idp.audiences, ["portcullis-api"]);
        assert!(idp.api_audience_is_shared);
        // Neither: no API audience (IdP tokens are not API credentials), nothing shared.
        let idp = cfg(&[issuer]).unwrap().idp.unwrap();
        assert!(idp.api_audiences.is_empty() && !idp.api_audience_is_shared);
        // One value in both, or an empty API audience, stops the start.
        for bad in [
            vec![
                issuer,
                ("PORTCULLIS_API_AUDIENCE", "a, shared"),
                ("PORTCULLIS_IDP_AUDIENCE", "shared"),
            ],
            vec![issuer, ("PORTCULLIS_API_AUDIENCE", " , ")],
        ] {
            let err = format!("{:#}", cfg(&bad).unwrap_err());
            assert!(err.contains("PORTCULLIS_API_AUDIENCE"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_jwks_file_needs_an_api_audience() {
        let dir = std::env::temp_dir().join(format!("portcullis-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let jwks = dir.join("jwks.json");
        std::fs::write(&jwks, r#"{"keys": []}"#).unwrap();
        let jwks = jwks.display().to_string();
        let base = [
            ("PORTCULLIS_IDP_ISSUER", "https://idp.example.com"),
            ("PORTCULLIS_IDP_JWKS_FILE", jwks.as_str()),
        ];
        let err = format!("{:#}", cfg(&base).unwrap_err());
        assert!(err.contains("PORTCULLIS_API_AUDIENCE"), "{err}");
        for audience in ["PORTCULLIS_API_AUDIENCE", "PORTCULLIS_IDP_AUDIENCE"] {
            let mut vars = base.to_vec();
            vars.push((audience, "portcullis-api"));
            assert!(cfg(&vars).is_ok(), "{audience}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn values_and_errors() {
        let c = cfg(&[
            ("PORTCULLIS_PUBLIC_URL", "https://mcp.example.com/"),
            ("PORTCULLIS_ADMIN_TOKEN", "0123456789abcdef-secret"),
            ("PORTCULLIS_AUTH_MODE", "broker"),
            ("DATABASE_URL", "postgres://u@127.0.0.1/db"),
            ("MCP_ADVERTISED_SCOPES", "openid  email"),
            ("IDE_OAUTH_CALLBACK_PORT", "0"),
        ])
        .unwrap();
        assert_eq!(c.public_url(), "https://mcp.example.com");
        assert_eq!(
            c.admin_token_sha256,
            Some(sha256(b"0123456789abcdef-secret"))
        );
        assert!(!format!("{c:?}").contains("secret"));
        assert_eq!(c.auth_mode, AuthMode::Broker);
        assert_eq!(c.database_kind(), "postgres");
        assert_eq!(c.advertised_scopes, ["openid", "email"]);
        assert_eq!(c.ide_oauth_callback_port, None);

        for bad in [
            ("PORTCULLIS_PUBLIC_URL", "https://x.example.com/path"),
            ("PORTCULLIS_PUBLIC_URL", "ftp://x.example.com"),
            ("PORTCULLIS_AUTH_MODE", "sideways"),
            ("PORTCULLIS_ADMIN_TOKEN", "short"),
            ("PORTCULLIS_ADMIN_TOKEN_SHA256", "zz"),
            ("PORTCULLIS_IDP_JWKS_FILE", "/nonexistent"),
            ("IDE_OAUTH_CALLBACK_PORT", "99999"),
        ] {
            let err = cfg(&[bad]).unwrap_err();
            assert!(format!("{err:#}").contains(bad.0), "{bad:?}: {err:#}");
        }
    }
}
