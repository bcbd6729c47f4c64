//! Audit trail settings (`PORTCULLIS_AUDIT_*`), read by `audit`.

use std::time::Duration;

use anyhow::Context as _;

/// Audit settings.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub retention: Duration,
    pub max_events: u64,
    pub max_batch: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: Duration::from_secs(30 * 86_400),
            max_events: 1_000_000,
            max_batch: 5000,
        }
    }
}

impl AuditConfig {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<AuditConfig> {
        let mut c = AuditConfig::default();
        if let Some(days) = get("PORTCULLIS_AUDIT_RETENTION_DAYS") {
            let days: u64 =
                days.trim().parse().ok().filter(|d| *d > 0).context(
                    "PORTCULLIS_AUDIT_RETENTION_DAYS: expected a whole number of days ≥ 1",
                )?;
            c.retention = Duration::from_secs(days * 86_400);
        }
        if let Some(n) = get("PORTCULLIS_AUDIT_MAX_EVENTS") {
            c.max_events = n
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .context("PORTCULLIS_AUDIT_MAX_EVENTS: expected a number ≥ 1")?;
        }
        if let Some(n) = get("PORTCULLIS_AUDIT_MAX_BATCH") {
            c.max_batch = n
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .context("PORTCULLIS_AUDIT_MAX_BATCH: expected a number ≥ 1")?;
        }
        Ok(c)
    }
}
