//! The plugin configuration: for now the policy snapshot inline (Envoy gives wasm modules no
//! file access). Parsed and validated once in `on_configure`; a bad one refuses to load.

use serde::Deserialize;
use serde_json::value::RawValue;

use policy::{Policy, SnapshotError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginConfig<'a> {
    #[serde(borrow)]
    snapshot: &'a RawValue,
}

/// Why the plugin configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no plugin configuration (expected {{\"snapshot\": {{…}}}})")]
    Missing,
    #[error("plugin configuration: {0}")]
    Json(String),
    #[error("snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
}

/// Parses `{"snapshot": {...}}` into a compiled policy.
pub fn parse(bytes: Option<&[u8]>) -> Result<Policy, ConfigError> {
    let bytes = bytes
        .filter(|b| !b.is_empty())
        .ok_or(ConfigError::Missing)?;
    let config: PluginConfig<'_> =
        serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
    Ok(Policy::from_json(config.snapshot.get().as_bytes())?)
}
