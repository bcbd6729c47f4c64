//! The plugin configuration decides what this instance of the module is. Envoy gives wasm
//! modules no file access, so everything comes inline; it is parsed and validated once in
//! `on_configure`, and anything that is not exactly one of the three shapes refuses to load:
//!
//! - HTTP filter, static policy: `{"snapshot": {…}}` (optionally `"audit": true`);
//! - HTTP filter, policy from the control plane: `{"shared_snapshot": true}` (optionally
//!   `"audit": false`; audit is on by default here);
//! - either HTTP filter may say what it holds while a body is decided, `"hold": "request"` (the
//!   default) or `"hold": "body"`, see [`Hold`];
//! - the singleton sync service (`bootstrap_extensions`):
//!   `{"sync": {"cluster": "…", "token": "…", …}}`, see [`SyncConfig`].

use serde::Deserialize;
use serde_json::value::RawValue;

use policy::{Policy, SnapshotError};

/// Longest long-poll the control plane holds (`GET /v1/policy?wait=` accepts 0..=60).
pub const MAX_POLL_SECONDS: u64 = 60;
/// More buffered audit events than this is a configuration mistake (each is ~0.5 KiB).
pub const MAX_AUDIT_BUFFER_EVENTS: usize = 1_000_000;
/// Default audit buffer: a 60-second outage at 2,000 decisions/s (120,000 events) with room
/// to spare, within [`DEFAULT_AUDIT_BUFFER_BYTES`].
pub const DEFAULT_AUDIT_BUFFER_EVENTS: usize = 150_000;
/// Default byte bound of the audit buffer: what the singleton's VM may hold for it (JSON plus
/// per-event overhead; a typical event measured ~0.5 KiB, see docs/benchmarks.md).
pub const DEFAULT_AUDIT_BUFFER_BYTES: usize = 96 << 20;
/// The byte bound's range: at least one largest event, at most what a wasm32 VM can spare.
pub const MIN_AUDIT_BUFFER_BYTES: usize = 1 << 20;
pub const MAX_AUDIT_BUFFER_BYTES: usize = 1 << 30;
/// Default most events per `POST /v1/audit` (the control plane's default limit is 5,000).
pub const DEFAULT_AUDIT_BATCH_EVENTS: usize = 2_000;

const SHAPES: &str = "expected {\"snapshot\": {…}}, {\"shared_snapshot\": true} or {\"sync\": {…}}";

/// Every field any of the shapes may have; which ones are present decides the shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig<'a> {
    #[serde(borrow, default)]
    snapshot: Option<&'a RawValue>,
    #[serde(default)]
    shared_snapshot: Option<bool>,
    #[serde(default)]
    audit: Option<bool>,
    /// With audit on: whether each event also goes to the request's filter state for Envoy's
    /// access log (default true).
    #[serde(default)]
    access_log: Option<bool>,
    #[serde(default)]
    hold: Option<Hold>,
    #[serde(default)]
    sync: Option<RawSync>,
}

/// What the HTTP filter holds back while it decides a request's body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hold {
    /// Nothing of the request goes upstream before its decision (headers included). Needs the
    /// wasm filter's `allow_on_headers_stop_iteration: true`.
    #[default]
    Request,
    /// An authenticated request's headers (credentials removed, identity headers set) go on at
    /// once; its body is held until decided, and a refused request is reset before any byte of
    /// its body reaches the upstream. For meshes whose wasm CRDs cannot set
    /// `allow_on_headers_stop_iteration` (Istio `WasmPlugin`, Envoy Gateway
    /// `EnvoyExtensionPolicy`).
    Body,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSync {
    cluster: Option<String>,
    authority: Option<String>,
    token: Option<String>,
    poll_seconds: Option<u64>,
    audit_buffer_events: Option<usize>,
    audit_buffer_bytes: Option<usize>,
    audit_batch_events: Option<usize>,
}

/// What the singleton needs to reach the control plane and ship audit events.
#[derive(Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// The Envoy cluster of the control plane.
    pub cluster: String,
    /// `:authority` of the calls (default: the cluster name).
    pub authority: String,
    /// Sent as `Authorization: Bearer …`; never logged.
    pub token: String,
    /// How long the control plane may hold one long-poll.
    pub poll_seconds: u64,
    /// Audit events kept while the control plane is unreachable; beyond it the oldest go.
    pub audit_buffer_events: usize,
    /// The same bound in bytes (event JSON plus per-event overhead).
    pub audit_buffer_bytes: usize,
    /// Most events in one `POST /v1/audit`.
    pub audit_batch_events: usize,
}

impl std::fmt::Debug for SyncConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncConfig")
            .field("cluster", &self.cluster)
            .field("authority", &self.authority)
            .field("token", &"<redacted>")
            .field("poll_seconds", &self.poll_seconds)
            .field("audit_buffer_events", &self.audit_buffer_events)
            .field("audit_buffer_bytes", &self.audit_buffer_bytes)
            .field("audit_batch_events", &self.audit_batch_events)
            .finish()
    }
}

/// What this root context is.
#[derive(Debug)]
pub enum Role {
    /// HTTP filter deciding from the snapshot in its configuration.
    Static {
        policy: Box<Policy>,
        audit: bool,
        access_log: bool,
        hold: Hold,
    },
    /// HTTP filter deciding from the snapshot the singleton put in shared data.
    Shared {
        audit: bool,
        access_log: bool,
        hold: Hold,
    },
    /// The singleton: long-polls the control plane, ships audit events.
    Singleton(SyncConfig),
}

/// Why the plugin configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no plugin configuration ({SHAPES})")]
    Missing,
    #[error("plugin configuration: {0}")]
    Json(String),
    #[error("snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
    #[error("{0} ({SHAPES})")]
    Shape(&'static str),
    #[error("sync.{field}: {problem}")]
    Sync {
        field: &'static str,
        problem: String,
    },
}

fn sync_error(field: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Sync {
        field,
        problem: problem.into(),
    }
}

/// Parses the plugin configuration into a role (a static snapshot is compiled here).
pub fn parse(bytes: Option<&[u8]>) -> Result<Role, ConfigError> {
    let bytes = bytes
        .filter(|b| !b.is_empty())
        .ok_or(ConfigError::Missing)?;
    let raw: RawConfig<'_> =
        serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
    match (raw.snapshot, raw.shared_snapshot, raw.sync) {
        (Some(snapshot), None, None) => Ok(Role::Static {
            policy: Box::new(Policy::from_json(snapshot.get().as_bytes())?),
            audit: raw.audit.unwrap_or(false),
            access_log: raw.access_log.unwrap_or(true),
            hold: raw.hold.unwrap_or_default(),
        }),
        (None, Some(true), None) => Ok(Role::Shared {
            audit: raw.audit.unwrap_or(true),
            access_log: raw.access_log.unwrap_or(true),
            hold: raw.hold.unwrap_or_default(),
        }),
        (None, Some(false), None) => Err(ConfigError::Shape(
            "shared_snapshot must be true (a filter with its own policy takes \"snapshot\")",
        )),
        (None, None, Some(sync)) => {
            if raw.audit.is_some() || raw.hold.is_some() || raw.access_log.is_some() {
                return Err(ConfigError::Shape(
                    "\"audit\", \"access_log\" and \"hold\" belong to the HTTP filter's configuration, not the singleton's",
                ));
            }
            Ok(Role::Singleton(sync_config(sync)?))
        }
        (None, None, None) => Err(ConfigError::Shape(if raw.audit.is_some() {
            "\"audit\" alone is not a configuration"
        } else {
            "empty configuration"
        })),
        _ => Err(ConfigError::Shape(
            "\"snapshot\", \"shared_snapshot\" and \"sync\" are different roles; give exactly one",
        )),
    }
}

fn sync_config(raw: RawSync) -> Result<SyncConfig, ConfigError> {
    let cluster = raw
        .cluster
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| {
            sync_error(
                "cluster",
                "required: the Envoy cluster of the control plane",
            )
        })?;
    let authority = match raw.authority {
        Some(a) if a.trim().is_empty() => {
            return Err(sync_error("authority", "must not be empty when given"))
        }
        Some(a) => a,
        None => cluster.clone(),
    };
    let token = raw
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| sync_error("token", "required: the control plane's sync token"))?;
    // The token goes into a header: refuse what would break or split it (without echoing it).
    if token.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err(sync_error(
            "token",
            "must be printable ASCII without spaces",
        ));
    }
    let poll_seconds = raw.poll_seconds.unwrap_or(30);
    if !(1..=MAX_POLL_SECONDS).contains(&poll_seconds) {
        return Err(sync_error(
            "poll_seconds",
            format!("{poll_seconds} is outside 1..={MAX_POLL_SECONDS}"),
        ));
    }
    let audit_buffer_events = raw
        .audit_buffer_events
        .unwrap_or(DEFAULT_AUDIT_BUFFER_EVENTS);
    if !(1..=MAX_AUDIT_BUFFER_EVENTS).contains(&audit_buffer_events) {
        return Err(sync_error(
            "audit_buffer_events",
            format!("{audit_buffer_events} is outside 1..={MAX_AUDIT_BUFFER_EVENTS}"),
        ));
    }
    let audit_buffer_bytes = raw.audit_buffer_bytes.unwrap_or(DEFAULT_AUDIT_BUFFER_BYTES);
    if !(MIN_AUDIT_BUFFER_BYTES..=MAX_AUDIT_BUFFER_BYTES).contains(&audit_buffer_bytes) {
        return Err(sync_error(
            "audit_buffer_bytes",
            format!(
                "{audit_buffer_bytes} is outside {MIN_AUDIT_BUFFER_BYTES}..={MAX_AUDIT_BUFFER_BYTES}"
            ),
        ));
    }
    let audit_batch_events = raw
        .audit_batch_events
        .unwrap_or(DEFAULT_AUDIT_BATCH_EVENTS)
        .min(audit_buffer_events);
    if audit_batch_events == 0 {
        return Err(sync_error("audit_batch_events", "must be at least 1"));
    }
    Ok(SyncConfig {
        cluster,
        authority,
        token,
        poll_seconds,
        audit_buffer_events,
        audit_buffer_bytes,
        audit_batch_events,
    })
}

#[cfg(test)]
mod tests;
