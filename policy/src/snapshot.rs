//! Policy snapshot v1: the wire format the control plane produces and every filter consumes.
//!
//! These types mirror the JSON one to one and are only the *input*: [`crate::Policy::from_json`]
//! validates them and compiles them into ready-to-use lookups. Every struct refuses unknown
//! fields so a typo in an operator's snapshot is an error that names the field, never a silent
//! default. `docs/policy.md` documents each field. They serialize too, so the control plane
//! builds a snapshot as typed values and writes it once; every field is written, defaults
//! included, so the bytes say exactly what the filters will use.

use serde::{Deserialize, Serialize};

use crate::keys::Jwks;

/// The whole snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Format marker; must be `1`.
    pub format: u32,
    /// Monotonically increasing version assigned by whoever produced the snapshot.
    pub version: u64,
    #[serde(default)]
    pub issuers: Vec<IssuerSpec>,
    #[serde(default)]
    pub servers: Vec<ServerSpec>,
    #[serde(default)]
    pub group_mappings: Vec<GroupMappingSpec>,
    #[serde(default)]
    pub scopes: Vec<ScopeSpec>,
    #[serde(default)]
    pub api_keys: Vec<ApiKeySpec>,
    #[serde(default)]
    pub settings: SettingsSpec,
}

/// Media type of a `GET /v1/policy` answer made of deltas: [`SnapshotDelta`]s, one JSON object
/// per line, oldest first, each one's `base` the `etag` of the one before.
pub const DELTAS_MEDIA_TYPE: &str = "application/x-ndjson";

/// A change to a snapshot: what was added, replaced or removed since the snapshot whose ETag
/// is `base`, giving the one whose ETag is `etag`. Applied with [`crate::Policy::apply`], which
/// validates it as a whole snapshot is validated. Servers and scopes are keyed by `name`,
/// mappings by `group`: an entry listed replaces the entry of that key (or adds it), a key in a
/// `removed_*` list is taken out. `issuers`, `api_keys` and `settings`, small, are replaced as
/// a whole when present.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotDelta {
    /// Format marker; must be `1`.
    pub format: u32,
    /// ETag of the snapshot this applies to.
    pub base: String,
    /// ETag of the snapshot it gives.
    pub etag: String,
    /// Version of the snapshot it gives.
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuers: Option<Vec<IssuerSpec>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_servers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<ScopeSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_mappings: Vec<GroupMappingSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_group_mappings: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<Vec<ApiKeySpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<SettingsSpec>,
}

impl SnapshotDelta {
    /// Whether it changes nothing (only labels a new version).
    pub fn is_empty(&self) -> bool {
        self.issuers.is_none()
            && self.servers.is_empty()
            && self.removed_servers.is_empty()
            && self.scopes.is_empty()
            && self.removed_scopes.is_empty()
            && self.group_mappings.is_empty()
            && self.removed_group_mappings.is_empty()
            && self.api_keys.is_none()
            && self.settings.is_none()
    }
}

/// A token issuer the filter trusts, with the keys to check its signatures.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSpec {
    /// Exact `iss` claim value.
    pub issuer: String,
    /// Signing keys (a JWKS document). `kty: "oct"` keys are only accepted when `algorithms`
    /// lists an HMAC algorithm.
    pub jwks: Jwks,
    /// Accepted `alg` values, e.g. `["RS256"]`. Never `none`.
    pub algorithms: Vec<String>,
    /// Accepted `aud` values (any one must match).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Also accept tokens whose `aud` contains the canonical `resource` URL of the server being
    /// called (RFC 8707; what the broker issues).
    #[serde(default)]
    pub audience_is_resource: bool,
    /// For IdPs that put no `aud` in access tokens (Cognito): accepted `client_id`/`azp` values.
    /// Only consulted when the token carries no `aud` claim.
    #[serde(default)]
    pub client_ids: Vec<String>,
    /// Dot-separated path of the groups claim: `groups`, `cognito:groups`, `realm_access.roles`.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Claim used as the user's display name; `sub` when absent from the token.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// Required value of the `token_use` claim (Cognito: `access`), when set.
    #[serde(default)]
    pub token_use: Option<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// `jti`s of this issuer's tokens that were revoked before they expired (the broker's
    /// revoked grants); the list only holds tokens not yet expired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked_token_ids: Vec<String>,
}

impl IssuerSpec {
    /// An issuer with these keys and algorithms and every other field at the value a snapshot
    /// that omits it gets (no audiences, `groups`, `preferred_username`, 60 s leeway).
    pub fn new(issuer: String, jwks: Jwks, algorithms: Vec<String>) -> IssuerSpec {
        IssuerSpec {
            issuer,
            jwks,
            algorithms,
            audiences: Vec::new(),
            audience_is_resource: false,
            client_ids: Vec::new(),
            groups_claim: default_groups_claim(),
            username_claim: default_username_claim(),
            token_use: None,
            leeway_seconds: default_leeway(),
            revoked_token_ids: Vec::new(),
        }
    }
}

/// A registered MCP server as the filter sees it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Registry name; what scope grants refer to.
    pub name: String,
    /// Request path prefix, e.g. `/everything`. Matched on path-segment boundaries.
    pub path_prefix: String,
    /// Canonical URL clients connect to (RFC 8707 resource; no trailing slash).
    pub resource: String,
    /// URL of this server's protected-resource metadata, sent in `WWW-Authenticate`.
    pub resource_metadata: String,
    /// Scopes advertised in the `scope` parameter of a 401 challenge.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

/// Members of `group` get every scope in `scopes`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMappingSpec {
    pub group: String,
    pub scopes: Vec<String>,
}

/// The registry scopes that `groups` map to through `mappings`: every scope of every mapping
/// whose group is one of them, sorted, each once. The rule the filter applies to a token's
/// groups (compiled into scope ids by `Policy::compile`) and the control plane applies to an
/// API caller's, so both read group mappings the same way.
pub fn mapped_scopes<'a, G: AsRef<str>>(
    mappings: impl IntoIterator<Item = (&'a str, &'a [String])>,
    groups: &[G],
) -> Vec<String> {
    let mut scopes: Vec<String> = mappings
        .into_iter()
        .filter(|(group, _)| groups.iter().any(|g| g.as_ref() == *group))
        .flat_map(|(_, scopes)| scopes.iter().cloned())
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

/// A registry scope and what it grants.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeSpec {
    pub name: String,
    #[serde(default)]
    pub grants: Vec<GrantSpec>,
}

/// Access to one server (or `*`), restricted to some JSON-RPC methods and tools.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    /// Server name, or `*` for every server.
    pub server: String,
    /// JSON-RPC methods: exact names, `prefix/*`, or `*`. Empty allows none beyond the base
    /// protocol methods in `settings.base_methods`.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Tools allowed in `tools/call`: exact names, `prefix*`, or `*`.
    #[serde(default)]
    pub tools: Vec<String>,
}

/// A static credential (API key or gateway token), stored as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySpec {
    /// Label for logs and audit; never the key.
    pub name: String,
    /// Lowercase hex SHA-256 of the key.
    pub sha256: String,
    /// Identity the key stands for.
    pub subject: String,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Scopes granted directly, in addition to those mapped from `groups`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Unix time after which the key is refused.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

/// Knobs for the filter; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SettingsSpec {
    /// Largest JSON-RPC body inspected; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Longest bearer token accepted before any parsing.
    pub max_token_bytes: usize,
    /// Header carrying an API key (besides `Authorization: Bearer`).
    pub api_key_header: String,
    /// Trusted identity headers set for the upstream.
    pub user_header: String,
    pub groups_header: String,
    pub scopes_header: String,
    /// Protocol-level methods every identity with access to a server may call, whatever its
    /// grants: the lifecycle and discovery of both MCP revisions (2025-11-25: `initialize`,
    /// `ping`, `notifications/*`; 2026-07-28: `server/discover`, `subscriptions/listen`).
    pub base_methods: Vec<String>,
    /// Whether a 403 may name registry scopes in its `scope=` (a step-up request): only when
    /// the authorization server can issue them (broker mode). In direct mode the IdP knows no
    /// registry scopes, access comes from groups, and the 403 names the groups instead.
    pub step_up_scopes: bool,
    /// The control plane is the authorization server (broker mode): `/oauth` and every path
    /// under it (authorize, token, register, revoke, JWKS, the login pages) go to it without
    /// credentials, body and `Authorization` (a client's own secret) included. No server may
    /// then lie under `/oauth`.
    pub authorization_server: bool,
    /// Browser origins allowed to call; a request with another `Origin` is refused.
    /// Empty: any request carrying an `Origin` header is refused.
    pub allowed_origins: Vec<String>,
    /// Verified-token cache size per worker.
    pub token_cache_entries: usize,
    /// Rejected-token cache size per worker, and how long a rejection is remembered.
    pub negative_cache_entries: usize,
    pub negative_cache_seconds: u64,
}

impl Default for SettingsSpec {
    fn default() -> Self {
        SettingsSpec {
            max_body_bytes: 1024 * 1024,
            max_token_bytes: 16 * 1024,
            api_key_header: "x-api-key".into(),
            user_header: "x-portcullis-user".into(),
            groups_header: "x-portcullis-groups".into(),
            scopes_header: "x-portcullis-scopes".into(),
            base_methods: [
                "initialize",
                "ping",
                "notifications/*",
                "server/discover",
                "subscriptions/listen",
            ]
            .map(String::from)
            .to_vec(),
            step_up_scopes: true,
            authorization_server: false,
            allowed_origins: Vec::new(),
            token_cache_entries: 4096,
            negative_cache_entries: 1024,
            negative_cache_seconds: 30,
        }
    }
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_username_claim() -> String {
    "preferred_username".into()
}

fn default_leeway() -> u64 {
    60
}
