//! The snapshot validated and compiled into the lookups a request needs: issuers by `iss`, keys
//! by `kid`, servers by path prefix, scopes as bit sets. Built once per snapshot, shared
//! read-only by every request.
//!
//! A change arrives as a [`SnapshotDelta`] and is applied the way a whole snapshot is compiled
//! (a snapshot is a delta onto nothing, see `apply.rs`). The new `Policy` shares every part the
//! change did not touch (`Arc`s per server, per scope and per group), so a change costs what it
//! changed plus a shallow copy of the indexes, not a recompile of the registry.

mod apply;
mod entries;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::idset::IdSet;
use crate::keys::{Algorithm, VerifyingKey};
use crate::patterns::Patterns;
use crate::snapshot::{ApiKeySpec, Snapshot, SnapshotDelta};

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

/// A protected MCP server. A removed server's slot holds an empty one (see
/// [`Server::is_vacant`]) until a new server takes it.
#[derive(Debug, Default)]
pub struct Server {
    pub name: String,
    pub path_prefix: String,
    pub resource: String,
    pub resource_metadata: String,
    /// `WWW-Authenticate` value for a request without credentials, built once.
    pub challenge: String,
}

impl Server {
    /// An empty slot: no server has this id now.
    pub fn is_vacant(&self) -> bool {
        self.name.is_empty()
    }
}

/// What one grant of one scope allows on one server.
#[derive(Debug, Clone)]
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

/// A scope's grant with where it applies: one server, or every server (`*`).
#[derive(Debug, Clone)]
pub(crate) struct ScopeGrant {
    pub server: Option<ServerId>,
    pub grant: Grant,
}

/// A validated, compiled policy snapshot.
#[derive(Debug, Clone)]
pub struct Policy {
    pub version: u64,
    pub issuers: Arc<[Issuer]>,
    pub(crate) issuer_by_name: Arc<HashMap<String, usize>>,
    /// Servers by [`ServerId`]. A removed server leaves a vacant slot that a later server
    /// reuses, so the other servers keep their ids across changes.
    pub servers: Vec<Arc<Server>>,
    pub(crate) vacant_servers: Vec<ServerId>,
    pub(crate) server_by_name: HashMap<Arc<str>, ServerId>,
    /// Routing: a request path is looked up by its segment prefixes, longest first.
    pub(crate) server_by_prefix: HashMap<Arc<str>, ServerId>,
    /// Scope names by [`ScopeId`]; a removed scope's slot is `""` until reused.
    pub scope_names: Vec<Arc<str>>,
    pub(crate) vacant_scopes: Vec<ScopeId>,
    pub(crate) scope_ids: HashMap<Arc<str>, ScopeId>,
    /// Each scope's grants as compiled, by scope id: what a change to the scope takes out.
    pub(crate) scope_grants: Vec<Arc<[ScopeGrant]>>,
    /// The scopes each group is mapped to, sorted.
    pub(crate) group_scopes: HashMap<Arc<str>, Arc<[ScopeId]>>,
    /// The groups mapped to each scope, sorted, indexed by scope id: who a refusal names,
    /// found without walking every mapping on the request path.
    pub(crate) scope_groups: Vec<Arc<[Arc<str>]>>,
    /// Grants of named servers, indexed by [`ServerId`]; `*` grants are in `wildcard_grants`.
    pub(crate) server_grants: Vec<Arc<[Grant]>>,
    pub(crate) wildcard_grants: Arc<[Grant]>,
    /// The API keys as the snapshot gave them: recompiled when their groups' mappings change.
    pub(crate) api_key_specs: Arc<[ApiKeySpec]>,
    pub(crate) api_keys: Arc<[ApiKey]>,
    pub settings: Settings,
}

impl Policy {
    /// Parses and validates a snapshot; any problem is an error naming the field.
    pub fn from_json(bytes: &[u8]) -> Result<Policy, SnapshotError> {
        Policy::compile(parse_json(bytes)?)
    }

    /// Validates an already-deserialized snapshot.
    pub fn compile(snapshot: Snapshot) -> Result<Policy, SnapshotError> {
        if snapshot.format != 1 {
            return Err(invalid(
                "format",
                format!("unsupported format {}, expected 1", snapshot.format),
            ));
        }
        apply::apply(None, &apply::Changes::whole(&snapshot))
    }

    /// This policy with `delta` applied, validated as a whole snapshot is: on any problem the
    /// error names the delta's field and `self` is unchanged. What the delta does not touch is
    /// shared with `self`.
    pub fn apply(&self, delta: &SnapshotDelta) -> Result<Policy, SnapshotError> {
        if delta.format != 1 {
            return Err(invalid(
                "format",
                format!("unsupported format {}, expected 1", delta.format),
            ));
        }
        apply::apply(Some(self), &apply::Changes::delta(delta))
    }

    /// Registered servers (vacant slots left by removed servers are not counted).
    pub fn server_count(&self) -> usize {
        self.server_by_name.len()
    }

    /// The grants that apply on `server`: its own, then the `*` ones.
    pub(crate) fn grants_on(&self, server: ServerId) -> impl Iterator<Item = &Grant> {
        self.server_grants
            .get(server)
            .into_iter()
            .flat_map(|grants| grants.iter())
            .chain(self.wildcard_grants.iter())
    }

    /// The scopes mapped from a list of groups.
    pub fn scopes_for_groups<S: AsRef<str>>(&self, groups: &[S]) -> IdSet {
        let mut set = IdSet::empty(self.scope_names.len());
        for group in groups {
            if let Some(scopes) = self.group_scopes.get(group.as_ref()) {
                for &scope in scopes.iter() {
                    set.insert(scope);
                }
            }
        }
        set
    }

    pub fn issuer(&self, iss: &str) -> Option<&Issuer> {
        self.issuer_by_name.get(iss).map(|&i| &self.issuers[i])
    }
}

/// `bytes` as a snapshot, with the path of the first problem.
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, SnapshotError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| SnapshotError::Json {
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
    Ok(value)
}

impl SnapshotDelta {
    /// Parses a delta; any problem is an error naming the field.
    pub fn from_json(bytes: &[u8]) -> Result<SnapshotDelta, SnapshotError> {
        parse_json(bytes)
    }

    /// Parses deltas written one per line ([`crate::snapshot::DELTAS_MEDIA_TYPE`]), checking
    /// that each one's `base` is the `etag` of the one before. Empty lines are skipped.
    pub fn parse_lines(bytes: &[u8]) -> Result<Vec<SnapshotDelta>, SnapshotError> {
        let mut deltas: Vec<SnapshotDelta> = Vec::new();
        for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let delta = parse_json::<SnapshotDelta>(line).map_err(|e| match e {
                SnapshotError::Json { path, message } => SnapshotError::Json {
                    path: format!("line {}: {path}", n + 1),
                    message,
                },
                other => other,
            })?;
            if let Some(previous) = deltas.last() {
                if delta.base != previous.etag {
                    return Err(invalid(
                        format!("line {}: base", n + 1),
                        format!(
                            "{:?} does not follow {:?}, the delta before",
                            delta.base, previous.etag
                        ),
                    ));
                }
            }
            deltas.push(delta);
        }
        Ok(deltas)
    }
}
