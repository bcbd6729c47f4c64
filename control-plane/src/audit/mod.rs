//! The audit trail: decisions the filters made, shipped in batches by each Envoy's singleton
//! (`POST /v1/audit`), stored with bounded retention, searched with `GET /api/audit`.
//!
//! Settings (environment):
//! - `PORTCULLIS_AUDIT_RETENTION_DAYS` (default 30): older records are deleted.
//! - `PORTCULLIS_AUDIT_MAX_EVENTS` (default 1000000): beyond this many, the oldest are deleted.
//! - `PORTCULLIS_AUDIT_MAX_BATCH` (default 5000): larger batches are refused with 413.
//!
//! An event's `time_ms` must fall in [now − retention, now + [`MAX_FUTURE_SKEW`]] by the control
//! plane's clock ([`time_problem`]); events outside are refused one by one (counted, the rest
//! of the batch is stored), so retention cannot be gamed by future-dated events.

mod store;
#[cfg(test)]
mod tests;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::storage::Db;

pub use crate::config::AuditConfig;
pub use store::{AuditPage, AuditQuery};

pub use policy::audit::{Decision, GapReason, MAX_FIELD_CHARS, MAX_LIST_ITEMS};

/// One decision as the filter reports it (the wire format of `POST /v1/audit`), owned: the type
/// lives in `policy`, shared with the filter. Fields a newer filter adds are ignored, so filters
/// can be upgraded before the control plane.
pub type AuditEvent = policy::audit::AuditEvent<'static>;

/// Where an Envoy's trail is incomplete (contract "AuditGap"), owned.
pub type AuditGap = policy::audit::AuditGap<'static>;

/// Most gap records one batch may carry (an Envoy sends at most one per reason).
pub const MAX_GAPS_PER_BATCH: usize = 64;

/// A batch from one Envoy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditBatch {
    #[serde(deserialize_with = "crate::strict_json::objects")]
    pub events: Vec<AuditEvent>,
    /// Events the singleton had to drop since its last batch (buffer full).
    #[serde(default)]
    pub dropped: u64,
    /// Runs of lost events, each with its span and exact count (filters with gap records).
    #[serde(default, deserialize_with = "crate::strict_json::objects")]
    pub gaps: Vec<AuditGap>,
}

/// A stored gap record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GapRecord {
    /// When the control plane first stored it (unix milliseconds).
    pub received_ms: u64,
    #[serde(flatten)]
    pub gap: AuditGap,
}

/// Refuses a gap record that cannot be stored, naming the field; `index` is its place in
/// the batch's `gaps`.
pub fn validate_gap(gap: &AuditGap, index: usize) -> Result<(), InvalidEvent> {
    let err = |field, problem| InvalidEvent {
        list: "gaps",
        index,
        field,
        problem,
    };
    if let Some(problem) = policy::audit::id_problem(&gap.id) {
        return Err(err("id", problem));
    }
    if gap.from_ms > gap.to_ms {
        return Err(err("to_ms", "must not be before from_ms"));
    }
    if gap.to_ms > i64::MAX as u64 || gap.lost > i64::MAX as u64 {
        return Err(err("to_ms", "out of range"));
    }
    if gap.lost == 0 {
        return Err(err("lost", "expected at least 1"));
    }
    Ok(())
}

/// Why an event was refused; the message names the event and the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{list}[{index}].{field}: {problem}")]
pub struct InvalidEvent {
    /// `events` or `gaps`.
    pub list: &'static str,
    pub index: usize,
    pub field: &'static str,
    pub problem: &'static str,
}

/// Refuses an event that cannot be stored as it is (over-long text, control characters, an
/// unknown reason shape), naming the field; `index` is its place in the batch. Never alters
/// it: the filter makes its fields storable ([`policy::audit::storable`]) before sending.
pub fn validate(event: &AuditEvent, index: usize) -> Result<(), InvalidEvent> {
    let err = |field, problem| InvalidEvent {
        list: "events",
        index,
        field,
        problem,
    };
    if let Some(id) = event.event_id.as_deref() {
        if let Some(problem) = policy::audit::id_problem(id) {
            return Err(err("event_id", problem));
        }
    }
    let texts: [(&'static str, Option<&str>); 10] = [
        ("request_id", event.request_id.as_deref()),
        ("reason", Some(&event.reason)),
        ("sub", event.sub.as_deref()),
        ("username", event.username.as_deref()),
        ("issuer", event.issuer.as_deref()),
        ("client_id", event.client_id.as_deref()),
        ("server", event.server.as_deref()),
        ("method", event.method.as_deref()),
        ("tool", event.tool.as_deref()),
        ("path", Some(&event.path)),
    ];
    for (field, text) in texts {
        if let Some(text) = text {
            check_text(text).map_err(|problem| err(field, problem))?;
        }
    }
    check_text(&event.http_method).map_err(|p| err("http_method", p))?;
    if event.reason.is_empty()
        || !event
            .reason
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(err("reason", "expected a lowercase reason code"));
    }
    if !(100..=599).contains(&event.status) {
        return Err(err("status", "expected an HTTP status (100-599)"));
    }
    for (field, list) in [("groups", &event.groups), ("scopes", &event.scopes)] {
        if list.len() > MAX_LIST_ITEMS {
            return Err(err(field, "too many items"));
        }
        for item in list {
            check_text(item).map_err(|p| err(field, p))?;
        }
    }
    if event.time_ms > i64::MAX as u64 {
        return Err(err("time_ms", "out of range"));
    }
    if event.policy_version > i64::MAX as u64 {
        return Err(err("policy_version", "out of range"));
    }
    Ok(())
}

fn check_text(text: &str) -> Result<(), &'static str> {
    policy::audit::text_problem(text).map_or(Ok(()), Err)
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Unique, random; with `time_ms` the paging key.
    pub id: String,
    /// When the control plane stored it (unix milliseconds).
    pub received_ms: u64,
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// How far ahead of the control plane's clock an event's `time_ms` may be: room for clock skew
/// between the Envoy hosts and the control plane. A later event is refused: it would outlive
/// the retention period (records are pruned by `time_ms`) and sit at the top of every listing.
pub const MAX_FUTURE_SKEW: Duration = Duration::from_secs(5 * 60);

/// Why an event's `time_ms` is outside the window the control plane stores, `now_ms` being the
/// time the batch arrived: more than [`MAX_FUTURE_SKEW`] ahead, or older than the retention
/// period (it would be pruned within the minute anyway). `None`: in the window.
pub fn time_problem(time_ms: u64, now_ms: u64, retention: Duration) -> Option<&'static str> {
    let skew = MAX_FUTURE_SKEW.as_millis() as u64;
    let retention = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    if time_ms > now_ms.saturating_add(skew) {
        Some("more than 5 minutes ahead of the control plane's clock")
    } else if time_ms < now_ms.saturating_sub(retention) {
        Some("older than the audit retention period")
    } else {
        None
    }
}

/// Deletes records past the retention period or beyond the row bound, once a minute.
pub fn spawn_retention(db: Db, config: AuditConfig) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            let cutoff =
                crate::storage::now_ms().saturating_sub(config.retention.as_millis() as i64);
            match db.prune_audit(cutoff, config.max_events).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "audit retention: old records deleted"),
                Err(e) => tracing::warn!(error = %e, "audit retention failed; will retry"),
            }
        }
    });
}
