//! What Envoy's sync service talks to: `GET /v1/policy` (long-poll with ETag) and
//! `POST /v1/audit` (decision batches). Both need the sync token.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::audit::{AuditBatch, AuditRecord, GapRecord};
use crate::http::caller::SyncPeer;
use crate::http::error::{AppError, AppResult};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::state::AppState;
use crate::sync::Published;

/// The longest a long-poll may be held.
pub const MAX_WAIT_SECONDS: u64 = 60;
/// Largest audit batch body accepted (the API's usual limit is far smaller).
pub const MAX_AUDIT_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyQuery {
    /// Seconds to hold the request when the client already has the current version.
    #[serde(default)]
    wait: u64,
    /// `1`: the client applies deltas, so one whose ETag is a recent version gets the changes
    /// since it (`application/x-ndjson`) instead of the whole snapshot.
    #[serde(default)]
    deltas: u8,
}

/// `GET /v1/policy[?wait=N][&deltas=1]`: the current snapshot; with `If-None-Match` naming it,
/// held until a new version is published or `wait` seconds pass (then 304). With `deltas=1`
/// and an `If-None-Match` naming a version still kept, the answer is the deltas since it.
pub async fn policy(
    State(state): State<AppState>,
    _peer: SyncPeer,
    ApiQuery(query): ApiQuery<PolicyQuery>,
    headers: HeaderMap,
) -> AppResult<Response> {
    if query.wait > MAX_WAIT_SECONDS {
        return Err(AppError::invalid(
            "wait",
            format!("at most {MAX_WAIT_SECONDS} seconds"),
        ));
    }
    if query.deltas > 1 {
        return Err(AppError::invalid("deltas", "0 or 1"));
    }
    let deltas = query.deltas == 1;
    let known = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(normalise_etag);
    let mut rx = state.publisher.subscribe();
    let current = rx.borrow_and_update().clone();
    let Some(current) = current else {
        return Err(AppError::Unavailable(
            "no policy snapshot compiled yet; retry shortly".into(),
        ));
    };
    let Some(known) = known else {
        return snapshot_response(&current, None).await;
    };
    if normalise_etag(&current.etag) != known {
        return snapshot_response(&current, deltas.then_some(known)).await;
    }
    let wait = Duration::from_secs(query.wait);
    let next = tokio::select! {
        changed = tokio::time::timeout(
            wait,
            rx.wait_for(|p| p.as_ref().is_some_and(|p| normalise_etag(&p.etag) != known)),
        ) => match changed {
            Ok(Ok(next)) => next.clone(),
            // Timed out, or the publisher is gone: nothing new.
            Ok(Err(_)) | Err(_) => None,
        },
        () = state.publisher.closed() => None,
    };
    match next {
        Some(next) => snapshot_response(&next, deltas.then_some(known)).await,
        None => Ok(not_modified(&current)),
    }
}

/// `"5-abc"`, `W/"5-abc"` and `5-abc` name the same version.
fn normalise_etag(tag: &str) -> &str {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.trim_matches('"')
}

/// The deltas from `since` (an unquoted ETag) when they are kept, else the whole snapshot.
async fn snapshot_response(p: &Published, since: Option<&str>) -> AppResult<Response> {
    let (body, media_type) = match since.and_then(|etag| p.deltas_since(etag)) {
        Some(deltas) => (deltas, policy::snapshot::DELTAS_MEDIA_TYPE),
        None => (
            p.body()
                .await
                .map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?,
            "application/json",
        ),
    };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    version_headers(h, p);
    Ok(response)
}

fn not_modified(p: &Published) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    version_headers(response.headers_mut(), p);
    response
}

fn version_headers(h: &mut HeaderMap, p: &Published) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&p.etag) {
        h.insert(header::ETAG, v);
    }
    h.insert("x-portcullis-policy-version", HeaderValue::from(p.version));
}

/// `POST /v1/audit`: stores a batch of decisions. A malformed event refuses the whole batch
/// (400, nothing stored: the sender is broken). An event whose `time_ms` is outside the stored
/// window ([`crate::audit::time_problem`]: more than 5 minutes ahead of our clock, or older than
/// the retention period) is refused alone: the others are stored, and the answer (202) says
/// how many of each, so a skewed clock on one Envoy loses only what cannot be kept.
pub async fn audit(
    State(state): State<AppState>,
    _peer: SyncPeer,
    ApiJson(batch): ApiJson<AuditBatch>,
) -> AppResult<Response> {
    if batch.events.len() > state.config.audit.max_batch {
        return Err(AppError::PayloadTooLarge(0));
    }
    for (i, event) in batch.events.iter().enumerate() {
        crate::audit::validate(event, i).map_err(|e| AppError::BadRequest(e.to_string()))?;
    }
    if batch.gaps.len() > crate::audit::MAX_GAPS_PER_BATCH {
        return Err(AppError::BadRequest(format!(
            "gaps: at most {} per batch",
            crate::audit::MAX_GAPS_PER_BATCH
        )));
    }
    for (i, gap) in batch.gaps.iter().enumerate() {
        crate::audit::validate_gap(gap, i).map_err(|e| AppError::BadRequest(e.to_string()))?;
    }
    if batch.dropped > 0 {
        tracing::warn!(
            dropped = batch.dropped,
            "an Envoy dropped audit events (its buffer was full while the control plane was unreachable)"
        );
        state.metrics.audit_dropped(batch.dropped);
    }
    let received_ms = crate::storage::now_ms().max(0) as u64;
    let retention = state.config.audit.retention;
    let mut refused = 0usize;
    let mut first_refused: Option<(usize, u64, &'static str)> = None;
    let mut kept = Vec::with_capacity(batch.events.len());
    for (i, event) in batch.events.into_iter().enumerate() {
        match crate::audit::time_problem(event.time_ms, received_ms, retention) {
            None => kept.push(event),
            Some(problem) => {
                refused += 1;
                first_refused.get_or_insert((i, event.time_ms, problem));
            }
        }
    }
    if let Some((index, time_ms, problem)) = first_refused {
        tracing::warn!(
            refused,
            first = index,
            time_ms,
            received_ms,
            problem,
            "audit events refused: time_ms outside the stored window (is this Envoy's clock right?)"
        );
        state.metrics.audit_refused(refused as u64);
    }
    let unknown_kid = kept.iter().any(|e| e.reason == "unknown_kid");
    let offered = kept.len();
    let records: Vec<AuditRecord> = kept
        .into_iter()
        .map(|event| AuditRecord {
            id: format!("{:032x}", rand::random::<u128>()),
            received_ms,
            event,
        })
        .collect();
    // Gaps first: if the events' statement fails the batch is sent again, and the gaps'
    // upsert is idempotent. The same id twice in one batch is folded here (PostgreSQL refuses
    // an upsert touching one row twice).
    let mut gaps: Vec<GapRecord> = Vec::with_capacity(batch.gaps.len());
    for gap in batch.gaps {
        match gaps.iter_mut().find(|g| g.gap.id == gap.id) {
            Some(seen) => {
                seen.gap.lost = seen.gap.lost.max(gap.lost);
                seen.gap.from_ms = seen.gap.from_ms.min(gap.from_ms);
                seen.gap.to_ms = seen.gap.to_ms.max(gap.to_ms);
            }
            None => gaps.push(GapRecord { received_ms, gap }),
        }
    }
    if !gaps.is_empty() {
        state.db.upsert_audit_gaps(&gaps).await?;
    }
    // Events whose id is stored already (a batch sent again after a lost answer) are skipped
    // by the insert itself: `stored` counts only the new ones.
    let stored = if records.is_empty() {
        0
    } else {
        state.db.insert_audit(&records).await? as usize
    };
    let duplicates = offered.saturating_sub(stored);
    if duplicates > 0 {
        tracing::info!(
            duplicates,
            "audit events already stored were skipped (a batch sent again)"
        );
    }
    state.metrics.audit_received(stored as u64);
    if unknown_kid {
        state.unknown_kid_seen();
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "accepted": stored,
            "duplicates": duplicates,
            "refused": refused,
            "gaps": gaps.len(),
        })),
    )
        .into_response())
}
