//! The snapshot validated and compiled into the lookups a request needs: issuers by `iss`, keys
//! by `kid`, servers by path prefix, scopes as bit sets. Built once per snapshot, shared
//! read-only by every request.

use std::collections::{HashMap, HashSet};

use crate::idset::IdSet;
use crate::keys::{Algorithm, VerifyingKey};
use crate::patterns::Patterns;
use crate::snapshot::{IssuerSpec, ServerSpec, SettingsSpec, Snapshot};

/// Index of a server in [`Policy::servers`].
pub type ServerId = usize;
/// Index of a scope in the snapshot's scope list.
pub type ScopeId = usize;

/// Why a snapshot was refused. The message names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {message}")]
    Json { path: String, message: String },
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> SnapshotError {
    SnapshotError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A trusted issuer, ready for verification.
#[derive(Debug)]
pub struct Issuer {
    pub issuer: String,
    pub keys: Box<[VerifyingKey]>,
    pub keys_by_kid: HashMap<String, usize>,
    pub algorithms: Box<[Algorithm]>,
    pub audiences: Box<[String]>,
    pub audience_is_resource: bool,
    pub client_ids: Box<[String]>,
    pub groups_claim: String,
    pub username_claim: String,
    pub token_use: Option<String>,
    pub leeway_seconds: u64,
    /// Revoked `jti`s (see `IssuerSpec::revoked_token_ids`).
    pub revoked: HashSet<String>,
}

/// A protected MCP server.
#[derive(Debug)]
pub struct Server {
    pub name: String,
    pub path_prefix: String,
    pub resource: String,
    pub resource_metadata: String,
    /// `WWW-Authenticate` value for a request without credentials, built once.
    pub challenge: String,
}

/// What one grant of one scope allows on one server.
#[derive(Debug)]
pub struct Grant {
    pub scope: ScopeId,
    pub methods: Patterns,
    pub tools: Patterns,
}

/// A static credential.
pub struct ApiKey {
    pub name: String,
    pub sha256: [u8; 32],
    pub subject: String,
    pub groups: Box<[String]>,
    pub scopes: IdSet,
    pub expires_at: Option<u64>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("sha256", &"<redacted>")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Filter knobs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_body_bytes: usize,
    pub max_token_bytes: usize,
    pub api_key_header: String,
    pub user_header: String,
    pub groups_header: String,
    pub scopes_header: String,
    pub base_methods: Patterns,
    /// See `SettingsSpec::step_up_scopes`.
    pub step_up_scopes: bool,
    /// See `SettingsSpec::authorization_server`.
    pub authorization_server: bool,
    pub allowed_origins: Box<[String]>,
    pub token_cache_entries: usize,
    pub negative_cache_entries: usize,
    pub negative_cache_seconds: u64,
}

/// A validated, compiled policy snapshot.
#[derive(Debug)]
pub struct Policy {
    pub version: u64,
    pub issuers: Box<[Issuer]>,
    pub(crate) issuer_by_name: HashMap<String, usize>,
    pub servers: Box<[Server]>,
    /// Server ids sorted by descending prefix length, so the first match is the longest.
    pub(crate) routes: Box<[ServerId]>,
    pub scope_names: Box<[String]>,
    pub(crate) group_scopes: HashMap<String, IdSet>,
    /// The groups mapped to each scope, sorted, indexed by scope id: who a refusal names,
    /// found without walking every mapping on the request path.
    pub(crate) scope_groups: Box<[Box<[String]>]>,
    /// Grants that apply to each server (its own and `*` grants), indexed by [`ServerId`].
    pub(crate) server_grants: Box<[Box<[Grant]>]>,
    pub(crate) api_keys: Box<[ApiKey]>,
    pub settings: Settings,
}

impl Policy {
    /// Parses and validates a snapshot; any problem is an error naming the field.
    pub fn from_json(bytes: &[u8]) -> Result<Policy, SnapshotError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let snapshot: Snapshot =
            serde_path_to_error::deserialize(&mut de).map_err(|e| SnapshotError::Json {
                path: match e.path().to_string() {
                    p if p == "." => "snapshot".into(),
                    p => p,
                },
                message: e.inner().to_string(),
            })?;
        de.end().map_err(|e| SnapshotError::Json {
            path: "snapshot".into(),
            message: e.to_string(),
        })?;
        Policy::compile(snapshot)
    }

    /// Validates an already-deserialized snapshot.
    pub fn compile(snapshot: Snapshot) -> Result<Policy, SnapshotError> {
        if snapshot.format != 1 {
            return Err(invalid(
                "format",
                format!("unsupported format {}, expected 1", snapshot.format),
            ));
        }
        let settings = compile_settings(&snapshot.settings)?;

        let mut issuers = Vec::with_capacity(snapshot.issuers.len());
        let mut issuer_by_name = HashMap::new();
        for (i, spec) in snapshot.issuers.iter().enumerate() {
            let issuer = compile_issuer(&format!("issuers[{i}]"), spec)?;
            if issuer_by_name.insert(issuer.issuer.clone(), i).is_some() {
                return Err(invalid(
                    format!("issuers[{i}].issuer"),
                    format!("duplicate issuer {:?}", issuer.issuer),
                ));
            }
            issuers.push(issuer);
        }

        let mut servers = Vec::with_capacity(snapshot.servers.len());
        let mut server_by_name = HashMap::new();
        let mut prefixes = HashMap::new();
        for (i, spec) in snapshot.servers.iter().enumerate() {
            let server = compile_server(&format!("servers[{i}]"), spec)?;
            if snapshot.settings.authorization_server
                && crate::decision::is_authorization_server_path(&server.path_prefix)
            {
                return Err(invalid(
                    format!("servers[{i}].path_prefix"),
                    format!(
                        "{:?} lies under {}, the authorization server's",
                        server.path_prefix,
                        crate::decision::AUTHORIZATION_SERVER_PATH
                    ),
                ));
            }
            if server_by_name.insert(server.name.clone(), i).is_some() {
                return Err(invalid(
                    format!("servers[{i}].name"),
                    format!("duplicate server name {:?}", server.name),
                ));
            }
            if prefixes.insert(server.path_prefix.clone(), i).is_some() {
                return Err(invalid(
                    format!("servers[{i}].path_prefix"),
                    format!("duplicate path prefix {:?}", server.path_prefix),
                ));
            }
            servers.push(server);
        }
        let mut routes: Vec<ServerId> = (0..servers.len()).collect();
        routes.sort_by_key(|&id| std::cmp::Reverse(servers[id].path_prefix.len()));

        let mut scope_ids = HashMap::new();
        let mut scope_names = Vec::with_capacity(snapshot.scopes.len());
        let mut server_grants: Vec<Vec<Grant>> = servers.iter().map(|_| Vec::new()).collect();
        for (s, scope) in snapshot.scopes.iter().enumerate() {
            let field = format!("scopes[{s}]");
            if scope.name.is_empty() || scope.name.chars().any(|c| c.is_whitespace() || c == '"') {
                return Err(invalid(
                    format!("{field}.name"),
                    "a scope name must be non-empty, without spaces or quotes",
                ));
            }
            if scope_ids.insert(scope.name.clone(), s).is_some() {
                return Err(invalid(
                    format!("{field}.name"),
                    format!("duplicate scope {:?}", scope.name),
                ));
            }
            scope_names.push(scope.name.clone());
            for (g, grant) in scope.grants.iter().enumerate() {
                let field = format!("{field}.grants[{g}]");
                let methods = Patterns::parse(&grant.methods)
                    .map_err(|(i, e)| invalid(format!("{field}.methods[{i}]"), e))?;
                let tools = Patterns::parse(&grant.tools)
                    .map_err(|(i, e)| invalid(format!("{field}.tools[{i}]"), e))?;
                let targets: Vec<ServerId> = if grant.server == "*" {
                    (0..servers.len()).collect()
                } else {
                    match server_by_name.get(&grant.server) {
                        Some(&id) => vec![id],
                        None => {
                            return Err(invalid(
                                format!("{field}.server"),
                                format!("unknown server {:?}", grant.server),
                            ))
                        }
                    }
                };
                for id in targets {
                    server_grants[id].push(Grant {
                        scope: s,
                        methods: methods.clone(),
                        tools: tools.clone(),
                    });
                }
            }
        }
        let scope_count = scope_names.len();
        let scope_set = |field: &str, names: &[String]| -> Result<IdSet, SnapshotError> {
            let mut set = IdSet::empty(scope_count);
            for (i, name) in names.iter().enumerate() {
                match scope_ids.get(name) {
                    Some(&id) => set.insert(id),
                    None => {
                        return Err(invalid(
                            format!("{field}[{i}]"),
                            format!("unknown scope {name:?}"),
                        ))
                    }
                }
            }
            Ok(set)
        };

        let mut group_scopes: HashMap<String, IdSet> = HashMap::new();
        for (m, mapping) in snapshot.group_mappings.iter().enumerate() {
            if mapping.group.is_empty() {
                return Err(invalid(format!("group_mappings[{m}].group"), "empty group"));
            }
            let set = scope_set(&format!("group_mappings[{m}].scopes"), &mapping.scopes)?;
            group_scopes
                .entry(mapping.group.clone())
                .or_insert_with(|| IdSet::empty(scope_count))
                .union_with(&set);
        }

        let mut api_keys = Vec::with_capacity(snapshot.api_keys.len());
        for (k, spec) in snapshot.api_keys.iter().enumerate() {
            let field = format!("api_keys[{k}]");
            let sha256 = parse_sha256_hex(&spec.sha256).ok_or_else(|| {
                invalid(
                    format!("{field}.sha256"),
                    "expected 64 lowercase hex digits",
                )
            })?;
            if api_keys.iter().any(|other: &ApiKey| other.sha256 == sha256) {
                return Err(invalid(format!("{field}.sha256"), "duplicate key hash"));
            }
            if spec.subject.is_empty() {
                return Err(invalid(format!("{field}.subject"), "empty subject"));
            }
            let mut scopes = scope_set(&format!("{field}.scopes"), &spec.scopes)?;
            for group in &spec.groups {
                if let Some(set) = group_scopes.get(group) {
                    scopes.union_with(set);
                }
            }
            api_keys.push(ApiKey {
                name: spec.name.clone(),
                sha256,
                subject: spec.subject.clone(),
                groups: spec.groups.clone().into_boxed_slice(),
                scopes,
                expires_at: spec.expires_at,
            });
        }

        Ok(Policy {
            version: snapshot.version,
            issuers: issuers.into_boxed_slice(),
            issuer_by_name,
            servers: servers.into_boxed_slice(),
            routes: routes.into_boxed_slice(),
            scope_names: scope_names.into_boxed_slice(),
            scope_groups: scope_groups(&group_scopes, scope_count),
            group_scopes,
            server_grants: server_grants
                .into_iter()
                .map(Vec::into_boxed_slice)
                .collect(),
            api_keys: api_keys.into_boxed_slice(),
            settings,
        })
    }

    /// The scopes mapped from a list of groups.
    pub fn scopes_for_groups<S: AsRef<str>>(&self, groups: &[S]) -> IdSet {
        let mut set = IdSet::empty(self.scope_names.len());
        for group in groups {
            if let Some(scopes) = self.group_scopes.get(group.as_ref()) {
                set.union_with(scopes);
            }
        }
        set
    }

    pub fn issuer(&self, iss: &str) -> Option<&Issuer> {
        self.issuer_by_name.get(iss).map(|&i| &self.issuers[i])
    }
}

fn compile_issuer(field: &str, spec: &IssuerSpec) -> Result<Issuer, SnapshotError> {
    if spec.issuer.is_empty() {
        return Err(invalid(format!("{field}.issuer"), "empty issuer"));
    }
    if spec.algorithms.is_empty() {
        return Err(invalid(
            format!("{field}.algorithms"),
            "list at least one algorithm",
        ));
    }
    let mut algorithms = Vec::new();
    for (i, name) in spec.algorithms.iter().enumerate() {
        if name.eq_ignore_ascii_case("none") {
            return Err(invalid(
                format!("{field}.algorithms[{i}]"),
                "\"none\" is never accepted",
            ));
        }
        let alg = Algorithm::from_name(name).ok_or_else(|| {
            invalid(
                format!("{field}.algorithms[{i}]"),
                format!("unsupported algorithm {name:?}"),
            )
        })?;
        algorithms.push(alg);
    }
    let hmac = algorithms.iter().filter(|a| a.is_hmac()).count();
    if hmac != 0 && hmac != algorithms.len() {
        return Err(invalid(
            format!("{field}.algorithms"),
            "HMAC and public-key algorithms cannot be mixed for one issuer",
        ));
    }
    // An IdP's JWKS often also lists encryption keys, key types we do not support and keys for
    // algorithms this issuer does not accept (Keycloak publishes an RSA-OAEP key by default):
    // those are skipped, not refused. A malformed or weak key is still an error.
    let mut keys = Vec::with_capacity(spec.jwks.keys.len());
    let mut keys_by_kid = HashMap::new();
    for (i, jwk) in spec.jwks.keys.iter().enumerate() {
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            continue;
        }
        let key = match VerifyingKey::from_jwk(jwk) {
            Ok(key) => key,
            // A kind of key we do not verify with (P-521, Ed448, an encryption algorithm):
            // it cannot sign anything we accept, so it is left out like an `enc` key.
            Err(e) if e.is_unsupported() => continue,
            Err(e) => return Err(invalid(format!("{field}.jwks.keys[{i}]"), e.to_string())),
        };
        if !algorithms.iter().any(|&alg| key.accepts(alg)) {
            continue;
        }
        if let Some(kid) = key.kid() {
            if keys_by_kid.insert(kid.to_owned(), keys.len()).is_some() {
                return Err(invalid(
                    format!("{field}.jwks.keys[{i}].kid"),
                    format!("duplicate kid {kid:?}"),
                ));
            }
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(invalid(
            format!("{field}.jwks.keys"),
            "no signature key that fits the issuer's algorithms",
        ));
    }
    if spec.audiences.is_empty() && !spec.audience_is_resource && spec.client_ids.is_empty() {
        return Err(invalid(
            format!("{field}.audiences"),
            "set audiences, audience_is_resource or client_ids: tokens must be checked for who they were issued to",
        ));
    }
    if spec.groups_claim.is_empty() {
        return Err(invalid(format!("{field}.groups_claim"), "empty claim path"));
    }
    if spec.username_claim.is_empty() {
        return Err(invalid(
            format!("{field}.username_claim"),
            "empty claim name",
        ));
    }
    if spec.leeway_seconds > 300 {
        return Err(invalid(
            format!("{field}.leeway_seconds"),
            "at most 300 seconds of clock skew",
        ));
    }
    Ok(Issuer {
        issuer: spec.issuer.clone(),
        keys: keys.into_boxed_slice(),
        keys_by_kid,
        algorithms: algorithms.into_boxed_slice(),
        audiences: spec.audiences.clone().into_boxed_slice(),
        audience_is_resource: spec.audience_is_resource,
        client_ids: spec.client_ids.clone().into_boxed_slice(),
        groups_claim: spec.groups_claim.clone(),
        username_claim: spec.username_claim.clone(),
        token_use: spec.token_use.clone(),
        leeway_seconds: spec.leeway_seconds,
        revoked: spec.revoked_token_ids.iter().cloned().collect(),
    })
}

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/'))
        && !url.contains(['#', '"', ' ', '\\'])
        && !url.chars().any(char::is_control)
}

fn compile_server(field: &str, spec: &ServerSpec) -> Result<Server, SnapshotError> {
    if spec.name.is_empty() {
        return Err(invalid(format!("{field}.name"), "empty name"));
    }
    let prefix = &spec.path_prefix;
    let bad_prefix = !prefix.starts_with('/')
        || prefix.len() < 2
        || prefix.ends_with('/')
        || prefix.contains(['?', '#', '%', '\\', '"'])
        || prefix.contains("//")
        || prefix
            .split('/')
            .any(|s| s == "." || s == ".." || s == ".well-known")
        || prefix.chars().any(|c| c.is_control() || c.is_whitespace());
    if bad_prefix {
        return Err(invalid(
            format!("{field}.path_prefix"),
            format!("{prefix:?} must look like /name (starts with /, no trailing /, no . or .. segments, no query)"),
        ));
    }
    if !is_http_url(&spec.resource) || spec.resource.ends_with('/') {
        return Err(invalid(
            format!("{field}.resource"),
            format!(
                "{:?} must be an absolute http(s) URL without a trailing slash or fragment",
                spec.resource
            ),
        ));
    }
    if !is_http_url(&spec.resource_metadata) {
        return Err(invalid(
            format!("{field}.resource_metadata"),
            format!(
                "{:?} must be an absolute http(s) URL",
                spec.resource_metadata
            ),
        ));
    }
    for (i, scope) in spec.scopes_supported.iter().enumerate() {
        if scope.is_empty()
            || scope.contains([' ', '"', '\\'])
            || scope.chars().any(char::is_control)
        {
            return Err(invalid(
                format!("{field}.scopes_supported[{i}]"),
                format!("{scope:?} is not a valid scope token"),
            ));
        }
    }
    let mut challenge = format!("Bearer resource_metadata=\"{}\"", spec.resource_metadata);
    if !spec.scopes_supported.is_empty() {
        challenge.push_str(&format!(", scope=\"{}\"", spec.scopes_supported.join(" ")));
    }
    Ok(Server {
        name: spec.name.clone(),
        path_prefix: prefix.clone(),
        resource: spec.resource.clone(),
        resource_metadata: spec.resource_metadata.clone(),
        challenge,
    })
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn compile_settings(spec: &SettingsSpec) -> Result<Settings, SnapshotError> {
    const MAX_BODY_LIMIT: usize = 64 * 1024 * 1024;
    if spec.max_body_bytes == 0 || spec.max_body_bytes > MAX_BODY_LIMIT {
        return Err(invalid(
            "settings.max_body_bytes",
            format!("must be between 1 and {MAX_BODY_LIMIT}"),
        ));
    }
    if !(512..=1024 * 1024).contains(&spec.max_token_bytes) {
        return Err(invalid(
            "settings.max_token_bytes",
            "must be between 512 and 1048576",
        ));
    }
    for (field, name) in [
        ("settings.api_key_header", &spec.api_key_header),
        ("settings.user_header", &spec.user_header),
        ("settings.groups_header", &spec.groups_header),
        ("settings.scopes_header", &spec.scopes_header),
    ] {
        if !is_header_name(name) {
            return Err(invalid(
                field,
                format!("{name:?} is not a lowercase header name"),
            ));
        }
        if matches!(
            name.as_str(),
            "authorization" | "host" | "cookie" | "content-length" | "content-type"
        ) {
            return Err(invalid(field, format!("{name:?} is reserved")));
        }
    }
    let identity = [&spec.user_header, &spec.groups_header, &spec.scopes_header];
    if identity.iter().any(|h| **h == spec.api_key_header)
        || identity[0] == identity[1]
        || identity[1] == identity[2]
        || identity[0] == identity[2]
    {
        return Err(invalid(
            "settings",
            "identity and API-key headers must all differ",
        ));
    }
    let base_methods = Patterns::parse(&spec.base_methods)
        .map_err(|(i, e)| invalid(format!("settings.base_methods[{i}]"), e))?;
    for (i, origin) in spec.allowed_origins.iter().enumerate() {
        if !is_http_url(origin)
            || origin
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .contains('/')
        {
            return Err(invalid(
                format!("settings.allowed_origins[{i}]"),
                format!("{origin:?} must be an origin such as https://app.example.com"),
            ));
        }
    }
    if spec.token_cache_entries > 1_000_000 || spec.negative_cache_entries > 1_000_000 {
        return Err(invalid(
            "settings",
            "cache sizes are capped at 1000000 entries",
        ));
    }
    Ok(Settings {
        max_body_bytes: spec.max_body_bytes,
        max_token_bytes: spec.max_token_bytes,
        api_key_header: spec.api_key_header.clone(),
        user_header: spec.user_header.clone(),
        groups_header: spec.groups_header.clone(),
        scopes_header: spec.scopes_header.clone(),
        base_methods,
        step_up_scopes: spec.step_up_scopes,
        authorization_server: spec.authorization_server,
        allowed_origins: spec.allowed_origins.clone().into_boxed_slice(),
        token_cache_entries: spec.token_cache_entries,
        negative_cache_entries: spec.negative_cache_entries,
        negative_cache_seconds: spec.negative_cache_seconds,
    })
}

/// The inverse of the group mappings: for each scope id, the groups mapped to it, sorted.
fn scope_groups(group_scopes: &HashMap<String, IdSet>, scopes: usize) -> Box<[Box<[String]>]> {
    let mut by_scope: Vec<Vec<String>> = vec![Vec::new(); scopes];
    for (group, set) in group_scopes {
        for scope in set.iter() {
            by_scope[scope].push(group.clone());
        }
    }
    by_scope
        .into_iter()
        .map(|mut groups| {
            groups.sort();
            groups.into_boxed_slice()
        })
        .collect()
}

fn parse_sha256_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
