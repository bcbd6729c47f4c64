//! `/api/keys…`: API keys for automation. The key is returned once, at creation; only its
//! SHA-256 is stored and put in the policy snapshot. Deleting a key revokes it in every Envoy
//! with the next snapshot. Admin only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::auth::Caller;
use crate::http::error::{echo, AppError, AppResult};
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::state::AppState;
use crate::registry::{validate, ApiKey};

/// Prefix of every key we mint, so leaked keys are recognisable by secret scanners.
pub const KEY_PREFIX: &str = "pck_";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    name: String,
    /// Default `api-key:<name>`.
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    /// Unix seconds; must be in the future.
    #[serde(default)]
    expires_at: Option<i64>,
}

/// `GET /api/keys`: every key, without secrets.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> AppResult<Json<serde_json::Value>> {
    caller.require_admin()?;
    Ok(Json(json!({"keys": state.db.list_api_keys().await?})))
}

/// `POST /api/keys`: mints a key; the answer is the only time it is shown.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewKey>,
) -> AppResult<Response> {
    caller.require_admin()?;
    validate::scope_name("name", &body.name)?;
    let subject = body
        .subject
        .unwrap_or_else(|| format!("api-key:{}", body.name));
    if subject.is_empty() || subject.len() > 256 || subject.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "subject",
            "1-256 characters, no control characters",
        ));
    }
    for group in &body.groups {
        validate::group_name(group)
            .map_err(|_| AppError::invalid("groups", format!("invalid group {}", echo(group))))?;
    }
    let known = state.db.scope_names().await?;
    for scope in &body.scopes {
        if !known.contains(scope) {
            return Err(AppError::invalid(
                "scopes",
                format!("no scope named {}", echo(scope)),
            ));
        }
    }
    let now = crate::storage::now();
    if body.expires_at.is_some_and(|t| t <= now) {
        return Err(AppError::invalid(
            "expires_at",
            "must be in the future (unix seconds)",
        ));
    }
    let secret = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    let key = ApiKey {
        name: body.name,
        sha256: Sha256::digest(secret.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        subject,
        groups: body.groups,
        scopes: body.scopes,
        expires_at: body.expires_at,
        created_at: now,
    };
    state
        .db
        .insert_api_key(&key)
        .await
        .map_err(|e| match AppError::from(e) {
            AppError::Conflict(_) => {
                AppError::Conflict(format!("a key named {:?} exists", key.name))
            }
            other => other,
        })?;
    let mut answer = serde_json::to_value(&key).map_err(anyhow::Error::from)?;
    answer["key"] = secret.into();
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `DELETE /api/keys/{name}`: revokes a key.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> AppResult<StatusCode> {
    caller.require_admin()?;
    if validate::scope_name("name", &name).is_ok() && state.db.delete_api_key(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound(format!(
            "no API key named {}",
            echo(&name)
        )))
    }
}
