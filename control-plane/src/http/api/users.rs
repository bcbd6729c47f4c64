//! `/api/users…` (the built-in user store of broker mode) and `/api/oauth-clients…` (every
//! client of the authorization server). Admin only. Passwords are never returned; a client's
//! secret is shown once, at registration.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::authz::server::NewClient;
use crate::authz::users::{hash_password, valid_username, User};
use crate::http::error::{echo, AppError, AppResult};
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::state::AppState;
use crate::registry::validate;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutUser {
    /// Required when the user is created; omitted: the stored password stays.
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    disabled: bool,
}

/// `GET /api/users`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> AppResult<Json<serde_json::Value>> {
    caller.require_admin()?;
    Ok(Json(json!({"users": state.db.list_users().await?})))
}

/// `PUT /api/users/{username}`: creates (201) or replaces (200) a user.
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<PutUser>,
) -> AppResult<Response> {
    caller.require_admin()?;
    if !valid_username(&username) {
        return Err(AppError::invalid(
            "username",
            "1-64 characters: letters, digits, . _ - @",
        ));
    }
    for group in &body.groups {
        validate::group_name(group)
            .map_err(|_| AppError::invalid("groups", format!("invalid group {}", echo(group))))?;
    }
    if let Some(name) = &body.display_name {
        if name.chars().count() > 128 || name.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "display_name",
                "at most 128 characters, no control characters",
            ));
        }
    }
    let existing = state.db.get_user(&username).await?;
    let hash = match &body.password {
        Some(p) if p.chars().count() < 8 || p.len() > 1024 => {
            return Err(AppError::invalid("password", "8 to 1024 characters"))
        }
        Some(p) => {
            let p = p.clone();
            Some(
                tokio::task::spawn_blocking(move || hash_password(&p))
                    .await
                    .map_err(anyhow::Error::from)?
                    .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?,
            )
        }
        None if existing.is_none() => {
            return Err(AppError::invalid("password", "required for a new user"))
        }
        None => None,
    };
    let now = crate::storage::now();
    let user = User {
        username: username.clone(),
        groups: body.groups,
        display_name: body.display_name,
        disabled: body.disabled,
        created_at: existing.as_ref().map_or(now, |(u, _)| u.created_at),
        updated_at: now,
    };
    let created = state.db.put_user(&user, hash.as_deref()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!(user))).into_response())
}

/// `DELETE /api/users/{username}`: the person's grants stop at their next refresh (access
/// tokens live at most `PORTCULLIS_ACCESS_TOKEN_SECONDS`).
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(username): ApiPath<String>,
) -> AppResult<StatusCode> {
    caller.require_admin()?;
    if state.db.delete_user(&username).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound(format!("no user {}", echo(&username))))
    }
}

/// `GET /api/oauth-clients`: every client with how it registered, its status and last use.
pub async fn list_clients(
    State(state): State<AppState>,
    caller: Caller,
) -> AppResult<Json<serde_json::Value>> {
    caller.require_admin()?;
    Ok(Json(
        json!({"clients": state.db.list_oauth_clients().await?}),
    ))
}

/// `POST /api/oauth-clients`: an operator registers a client (broker mode); a confidential
/// client's secret is in this answer only.
pub async fn create_client(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewClient>,
) -> AppResult<Response> {
    caller.require_admin()?;
    let Some(server) = &state.authorization_server else {
        return Err(AppError::NotFound(
            "no authorization server here: clients are registered in broker mode (PORTCULLIS_AUTH_MODE=broker)".into(),
        ));
    };
    for group in &body.groups {
        validate::group_name(group)
            .map_err(|_| AppError::invalid("groups", format!("invalid group {}", echo(group))))?;
    }
    match server.preregister(body, crate::storage::now()).await {
        Ok(created) => Ok((StatusCode::CREATED, Json(created)).into_response()),
        Err(e) if e.error == crate::authz::error::ErrorCode::ServerError => {
            Err(AppError::Internal(anyhow::anyhow!("{e}")))
        }
        Err(e) => Err(AppError::invalid(
            if e.error == crate::authz::error::ErrorCode::InvalidRedirectUri {
                "redirect_uris"
            } else {
                "client"
            },
            e.error_description.to_string(),
        )),
    }
}

/// `POST /api/oauth-clients/cimd`: an operator stores a client's metadata document (the body
/// is the document, `client_id` its https URL): checked as a fetched one, never fetched. 201
/// when new, 200 when it replaced the stored copy.
pub async fn pin_document(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(document): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> AppResult<Response> {
    caller.require_admin()?;
    let server = broker(&state)?;
    match server.pin_document(document, crate::storage::now()).await {
        Ok((client, created)) => {
            recheck_documents(&state);
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(client)).into_response())
        }
        Err(e) if e.error == crate::authz::error::ErrorCode::ServerError => {
            Err(AppError::Internal(anyhow::anyhow!("{e}")))
        }
        Err(e) => Err(AppError::invalid(
            "document",
            e.error_description.to_string(),
        )),
    }
}

/// `PUT /api/oauth-clients/{client_id}/approve-redirects`: the redirect URIs a newer copy of a
/// client's metadata document added are used from now on.
pub async fn approve_redirects(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(client_id): ApiPath<String>,
) -> AppResult<Json<crate::authz::clients::Client>> {
    caller.require_admin()?;
    broker(&state)?;
    match state.db.approve_pending_redirects(&client_id).await? {
        Some(client) => {
            tracing::info!(client_id = %client.client_id, redirect_uris = ?client.redirect_uris, "pending redirect URIs approved");
            Ok(Json(client))
        }
        None => Err(AppError::NotFound(format!(
            "no client {}",
            echo(&client_id)
        ))),
    }
}

fn broker(state: &AppState) -> AppResult<&crate::authz::server::AuthorizationServer> {
    state.authorization_server.as_deref().ok_or_else(|| {
        AppError::NotFound(
            "no authorization server here: clients are registered in broker mode (PORTCULLIS_AUTH_MODE=broker)".into(),
        )
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientStatus {
    status: String,
}

/// `PUT /api/oauth-clients/{client_id}/status` with `{"status": "active" | "disabled"}`:
/// disabling revokes everything the client holds.
pub async fn set_client_status(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(client_id): ApiPath<String>,
    ApiJson(body): ApiJson<ClientStatus>,
) -> AppResult<StatusCode> {
    caller.require_admin()?;
    if !matches!(body.status.as_str(), "active" | "disabled") {
        return Err(AppError::invalid("status", "active or disabled"));
    }
    if !state
        .db
        .set_oauth_client_status(&client_id, &body.status)
        .await?
    {
        return Err(AppError::NotFound(format!(
            "no client {}",
            echo(&client_id)
        )));
    }
    if body.status == "disabled" {
        revoke_client(&state, &client_id).await?;
    }
    recheck_documents(&state);
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/oauth-clients/{client_id}`: the client must register again; its refresh
/// tokens and unused codes are revoked.
pub async fn delete_client(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(client_id): ApiPath<String>,
) -> AppResult<StatusCode> {
    caller.require_admin()?;
    if !state.db.delete_oauth_client(&client_id).await? {
        return Err(AppError::NotFound(format!(
            "no client {}",
            echo(&client_id)
        )));
    }
    revoke_client(&state, &client_id).await?;
    recheck_documents(&state);
    Ok(StatusCode::NO_CONTENT)
}

/// One of the assistants' documents may have come or gone: what the metadata advertises is
/// checked again (`PORTCULLIS_CIMD=auto`), in the background (a fetch may take seconds).
fn recheck_documents(state: &AppState) {
    if let Some(server) = state.authorization_server.clone() {
        tokio::spawn(async move {
            server
                .check_assistant_documents(crate::storage::now())
                .await;
        });
    }
}

async fn revoke_client(state: &AppState, client_id: &str) -> AppResult<()> {
    if let Some(server) = &state.authorization_server {
        let now_ms = u64::try_from(crate::storage::now_ms()).unwrap_or(0);
        server
            .revoke_client(client_id, now_ms)
            .await
            .map_err(|e| anyhow::anyhow!("revoking the client's grants: {e}"))?;
    }
    Ok(())
}
