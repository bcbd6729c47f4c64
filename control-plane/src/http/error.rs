//! One error type for every handler: logs the real cause, answers
//! `{"error": code, "error_description": message}` with the right status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

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
        let mut response = (
            status,
            Json(json!({"error": self.code(), "error_description": description})),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis\""),
            );
        }
        response
    }
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
