//! How the IdP's signing keys are refreshed (`PORTCULLIS_IDP_JWKS_*`), read by `idp::keys`.

use std::time::Duration;

use anyhow::{bail, Context as _};

/// How the IdP's keys are refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpKeysConfig {
    /// `PORTCULLIS_IDP_JWKS_REFRESH_SECONDS` (default 300).
    pub refresh_interval: Duration,
    /// `PORTCULLIS_IDP_KEY_OVERLAP_SECONDS` (default 86400).
    pub overlap: Duration,
    /// `PORTCULLIS_IDP_JWKS_MIN_REFRESH_SECONDS` (default 10).
    pub min_refresh_interval: Duration,
    /// `PORTCULLIS_IDP_JWKS_URI`: fetch the JWKS here instead of discovery's `jwks_uri`.
    pub jwks_uri: Option<url::Url>,
}

impl Default for IdpKeysConfig {
    fn default() -> Self {
        IdpKeysConfig {
            refresh_interval: Duration::from_secs(300),
            overlap: Duration::from_secs(86_400),
            min_refresh_interval: Duration::from_secs(10),
            jwks_uri: None,
        }
    }
}

impl IdpKeysConfig {
    /// Reads the variables through `get` (empty values count as unset).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<IdpKeysConfig> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let seconds = |name: &str, min: u64| -> anyhow::Result<Option<Duration>> {
            let Some(text) = get(name) else {
                return Ok(None);
            };
            let n: u64 = text
                .trim()
                .parse()
                .ok()
                .filter(|&n| n >= min)
                .with_context(|| format!("{name}: expected a number of seconds >= {min}"))?;
            Ok(Some(Duration::from_secs(n)))
        };
        let mut c = IdpKeysConfig::default();
        if let Some(d) = seconds("PORTCULLIS_IDP_JWKS_REFRESH_SECONDS", 1)? {
            c.refresh_interval = d;
        }
        if let Some(d) = seconds("PORTCULLIS_IDP_KEY_OVERLAP_SECONDS", 0)? {
            c.overlap = d;
        }
        if let Some(d) = seconds("PORTCULLIS_IDP_JWKS_MIN_REFRESH_SECONDS", 1)? {
            c.min_refresh_interval = d;
        }
        if c.min_refresh_interval > c.refresh_interval {
            bail!(
                "PORTCULLIS_IDP_JWKS_MIN_REFRESH_SECONDS ({}) must not exceed PORTCULLIS_IDP_JWKS_REFRESH_SECONDS ({})",
                c.min_refresh_interval.as_secs(),
                c.refresh_interval.as_secs()
            );
        }
        if let Some(uri) = get("PORTCULLIS_IDP_JWKS_URI") {
            c.jwks_uri = Some(
                crate::outbound::check_jwks_uri(uri.trim())
                    .map_err(|e| anyhow::anyhow!("PORTCULLIS_IDP_JWKS_URI: {e}"))?,
            );
        }
        Ok(c)
    }
}
