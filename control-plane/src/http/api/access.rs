//! `/api/scopes…` (registry scopes and their grants, `mcp_scopes`) and `/api/group-mappings…`
//! (IdP group → scopes). Admin only. Their shape is policy snapshot v1's `scopes` and
//! `group_mappings`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::http::error::{echo, AppError, AppResult};
use crate::http::extract::{ApiJson, ApiPath, Object};
use crate::http::state::AppState;
use crate::registry::{validate, Grant, Scope};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    /// Each grant an object (not an array of its fields).
    grants: Vec<Object<Grant>>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingBody {
    #[serde(default)]
    group: Option<String>,
    scopes: Vec<String>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<serde::de::IgnoredAny>,
}

/// A name that could never have been stored is simply not found (and never reaches the
/// database: PostgreSQL refuses NUL bytes).
fn known_scope_name(name: &str) -> AppResult<()> {
    validate::scope_name("name", name)
        .map_err(|_| AppError::NotFound(format!("no scope named {}", echo(name))))
}

fn known_group_name(group: &str) -> AppResult<()> {
    validate::group_name(group)
        .map_err(|_| AppError::NotFound(format!("no mapping for group {}", echo(group))))
}

fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// `GET /api/scopes`.
pub async fn list_scopes(
    State(state): State<AppState>,
    caller: Caller,
) -> AppResult<Json<serde_json::Value>> {
    caller.require_admin()?;
    let scopes = state.db.list_scopes().await?;
    Ok(Json(json!({"scopes": scopes})))
}

/// `GET /api/scopes/{name}`.
pub async fn get_scope(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> AppResult<Json<Scope>> {
    caller.require_admin()?;
    known_scope_name(&name)?;
    let scope = state
        .db
        .get_scope(&name)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no scope named {}", echo(&name))))?;
    Ok(Json(scope))
}

/// `PUT /api/scopes/{name}`: creates (201) or replaces (200) the scope and its grants.
pub async fn put_scope(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ScopeBody>,
) -> AppResult<Response> {
    caller.require_admin()?;
    validate::scope_name("name", &name)?;
    if body.name.as_deref().is_some_and(|n| n != name) {
        return Err(AppError::invalid(
            "name",
            "differs from the name in the URL",
        ));
    }
    validate::check_text(
        "description",
        body.description.as_deref().unwrap_or(""),
        4096,
    )?;
    let grants: Vec<Grant> = body.grants.into_iter().map(|Object(g)| g).collect();
    let servers = state.db.server_names().await?;
    validate::grants(&grants, |s| servers.iter().any(|n| n == s))?;
    let scope = Scope {
        name,
        description: body.description.unwrap_or_default(),
        grants,
        updated_at: 0,
    };
    let (stored, created) = state.db.put_scope(&scope).await?;
    tracing::info!(scope = %stored.name, by = %caller.subject, "scope saved");
    Ok((created_or_ok(created), Json(stored)).into_response())
}

/// `DELETE /api/scopes/{name}`: 204. Mappings naming it keep the name (and leave it out of the
/// policy snapshot) until they are edited.
pub async fn delete_scope(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> AppResult<StatusCode> {
    caller.require_admin()?;
    known_scope_name(&name)?;
    if state.db.delete_scope(&name).await? {
        tracing::info!(scope = %name, by = %caller.subject, "scope deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound(format!(
            "no scope named {}",
            echo(&name)
        )))
    }
}

/// `GET /api/group-mappings`.
pub async fn list_mappings(
    State(state): State<AppState>,
    caller: Caller,
) -> AppResult<Json<serde_json::Value>> {
    caller.require_admin()?;
    let mappings = state.db.list_group_mappings().await?;
    Ok(Json(json!({"group_mappings": mappings})))
}

/// `GET /api/group-mappings/{group}`.
pub async fn get_mapping(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
) -> AppResult<Response> {
    caller.require_admin()?;
    known_group_name(&group)?;
    let mapping = state
        .db
        .get_group_mapping(&group)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no mapping for group {}", echo(&group))))?;
    Ok(Json(mapping).into_response())
}

/// `PUT /api/group-mappings/{group}`: the group's scopes, replaced; every scope must exist.
pub async fn put_mapping(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
    ApiJson(body): ApiJson<MappingBody>,
) -> AppResult<Response> {
    caller.require_admin()?;
    validate::group_name(&group)?;
    if body.group.as_deref().is_some_and(|g| g != group) {
        return Err(AppError::invalid(
            "group",
            "differs from the group in the URL",
        ));
    }
    if body.scopes.len() > 256 {
        return Err(AppError::invalid("scopes", "at most 256 scopes"));
    }
    // Only the names given: reading every scope made this call grow with the registry.
    let known = state.db.existing_scopes(&body.scopes).await?;
    let mut scopes: Vec<String> = Vec::new();
    for (i, s) in body.scopes.iter().enumerate() {
        let field = format!("scopes[{i}]");
        validate::scope_name(&field, s)?;
        if !known.contains(s) {
            return Err(AppError::invalid(
                field,
                format!("no scope named {s:?} (create it with PUT /api/scopes/{s})"),
            ));
        }
        if !scopes.contains(s) {
            scopes.push(s.clone());
        }
    }
    let (stored, created) = state.db.put_group_mapping(&group, &scopes).await?;
    tracing::info!(group = %stored.group, by = %caller.subject, "group mapping saved");
    Ok((created_or_ok(created), Json(stored)).into_response())
}

/// `DELETE /api/group-mappings/{group}`: 204.
pub async fn delete_mapping(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
) -> AppResult<StatusCode> {
    caller.require_admin()?;
    known_group_name(&group)?;
    if state.db.delete_group_mapping(&group).await? {
        tracing::info!(%group, by = %caller.subject, "group mapping deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound(format!(
            "no mapping for group {}",
            echo(&group)
        )))
    }
}
