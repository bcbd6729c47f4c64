//! `GET /api/audit`: the decision trail, newest first, filtered and paged (admins only).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit::AuditQuery;
use crate::audit::Decision;
use crate::auth::Caller;
use crate::http::error::{AppError, AppResult};
use crate::http::extract::ApiQuery;
use crate::http::state::AppState;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// `sub` or preferred username.
    user: Option<String>,
    server: Option<String>,
    tool: Option<String>,
    /// `allow` or `deny`.
    decision: Option<String>,
    /// Unix milliseconds, inclusive.
    since: Option<i64>,
    /// Unix milliseconds, exclusive.
    until: Option<i64>,
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> AppResult<Json<Value>> {
    caller.require_admin()?;
    let decision = p
        .decision
        .as_deref()
        .map(|d| {
            Decision::parse(d)
                .ok_or_else(|| AppError::invalid("decision", "expected allow or deny"))
        })
        .transpose()?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(AppError::invalid(
            "limit",
            format!("expected 1 to {MAX_LIMIT}"),
        ));
    }
    if let (Some(since), Some(until)) = (p.since, p.until) {
        if since >= until {
            return Err(AppError::invalid("until", "must be after since"));
        }
    }
    let after = p.cursor.as_deref().map(parse_cursor).transpose()?;
    let query = AuditQuery {
        user: p.user,
        server: p.server,
        tool: p.tool,
        decision,
        since_ms: p.since,
        until_ms: p.until,
        limit,
        after,
    };
    let page = state.db.query_audit(&query).await?;
    // Where the trail is incomplete in the window asked for: gap records overlapping it
    // (not paged; an Envoy reports one per run of losses).
    let gaps = state
        .db
        .query_audit_gaps(p.since, p.until, MAX_LIMIT)
        .await?;
    Ok(Json(json!({
        "events": page.records,
        "gaps": gaps,
        "next_cursor": page.next.map(|(time, id)| format!("{time}.{id}")),
    })))
}

fn parse_cursor(cursor: &str) -> Result<(i64, String), AppError> {
    let bad = || AppError::invalid("cursor", "not a cursor from a previous page");
    let (time, id) = cursor.split_once('.').ok_or_else(bad)?;
    let time: i64 = time.parse().map_err(|_| bad())?;
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok((time, id.to_string()))
}
