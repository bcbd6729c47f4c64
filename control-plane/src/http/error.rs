//! One error type for every handler: logs the real cause, answers
//! `{"error": code, "error_description": message}` with the right status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Longest `error_description` sent (characters); longer ones are cut with "…".
const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Longest part of a client's value echoed back in a message (characters).
const MAX_ECHO_CHARS: usize = 64;

/// A value the client sent, for an error message: quoted like `{:?}`, cut after 64 characters
/// with "…" (a 60 KB value is not sent back).
pub fn echo(value: &str) -> String {
    let mut chars = value.char_indices();
    match chars.nth(MAX_ECHO_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
    }
}

fn cap(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_DESCRIPTION_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: malformed request (syntax, unknown field, wrong type).
    #[error("{0}")]
    BadRequest(String),
    /// 422: well-formed but invalid; the message names the field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// 401: no or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 502: an upstream (the IdP) answered badly; `cause` is logged, not sent.
    #[error("{message}")]
    BadGateway { message: String, cause: String },
    /// 503.
    #[error("{0}")]
    Unavailable(String),
    /// 500: logged with its cause chain; the client sees a generic message.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> AppError {
        AppError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "invalid_request",
            AppError::Invalid { .. } => "invalid_field",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::BadGateway { .. } => "bad_gateway",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal_error",
        }
    }

    /// A rejection from one of axum's extractors, as JSON (unknown JSON fields and type errors
    /// are 400, a too large body 413).
    pub fn from_rejection(status: StatusCode, text: String) -> AppError {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(0),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::UnsupportedMediaType(text),
            _ => AppError::BadRequest(text),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> AppError {
        if let Some(db) = e.as_database_error() {
            if db.is_unique_violation() {
                return AppError::Conflict("already exists".into());
            }
        }
        AppError::Internal(anyhow::Error::new(e).context("database"))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let description = match &self {
            AppError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                "internal error; see the control plane's log".to_string()
            }
            AppError::BadGateway { message, cause } => {
                tracing::warn!(%cause, "{message}");
                message.clone()
            }
            AppError::PayloadTooLarge(0) => "request body too large".to_string(),
            other => {
                tracing::debug!(status = status.as_u16(), error = %other, "request refused");
                other.to_string()
            }
        };
        let mut response = error_response(status, self.code(), description);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis\""),
            );
        }
        response
    }
}

/// `{"error": code, "error_description": message}` with the status (the message cut to 1024
/// characters).
pub fn error_response(status: StatusCode, code: &str, description: String) -> Response {
    (
        status,
        Json(json!({"error": code, "error_description": cap(description)})),
    )
        .into_response()
}

/// Middleware (outermost): an error answer that is not JSON yet — axum's own 405, a rejection of
/// one of its extractors, a layer's 413 — becomes the API's JSON error, headers (`Allow`, CORS,
/// `WWW-Authenticate`) kept, its text as the description.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    // JSON errors stay as they are, and so do the authorization server's HTML pages (a person
    // reads those in a browser).
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let code = match status {
        StatusCode::BAD_REQUEST => "invalid_request".to_string(),
        StatusCode::INTERNAL_SERVER_ERROR => "internal_error".to_string(),
        StatusCode::SERVICE_UNAVAILABLE => "unavailable".to_string(),
        other => other
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
            .replace([' ', '-'], "_"),
    };
    let json = error_response(status, &code, text);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let (json_parts, body) = json.into_parts();
    parts.headers.extend(json_parts.headers);
    Response::from_parts(parts, body)
}

pub type AppResult<T> = Result<T, AppError>;

// The domains' errors, as the API answers them.

impl From<crate::registry::validate::Invalid> for AppError {
    fn from(e: crate::registry::validate::Invalid) -> AppError {
        AppError::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}

impl From<crate::auth::NotAdmin> for AppError {
    fn from(e: crate::auth::NotAdmin) -> AppError {
        AppError::Forbidden(e.to_string())
    }
}

impl From<crate::auth::CredentialError> for AppError {
    fn from(e: crate::auth::CredentialError) -> AppError {
        AppError::Unauthorized(e.to_string())
    }
}

impl From<crate::idp::metadata::IdpMetadataError> for AppError {
    fn from(e: crate::idp::metadata::IdpMetadataError) -> AppError {
        use crate::idp::metadata::IdpMetadataError;
        match e {
            IdpMetadataError::NotConfigured => AppError::NotFound(e.to_string()),
            IdpMetadataError::Unavailable { ref cause } => AppError::BadGateway {
                message: e.to_string(),
                cause: cause.clone(),
            },
        }
    }
}

impl From<crate::discovery::NoAuthorizationServer> for AppError {
    fn from(e: crate::discovery::NoAuthorizationServer) -> AppError {
        AppError::Unavailable(e.to_string())
    }
}
