//! HTTP errors: every failure a client sees is JSON `{"status": "...", "code": N, "error": "..."}`.
//!
//! One type ([`ApiError`]) carries the status code and a message that says what was wrong and where;
//! library errors are mapped to it once, here, so handlers just use `?`.
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use isms_store::StoreError;
use serde_json::json;

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub code: StatusCode,
    /// What was wrong, for the client.
    pub message: String,
    /// The `status` text, when not the HTTP reason phrase (the registry's seed-shaped answers:
    /// "Generator already exists").
    pub status: Option<String>,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(code: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            status: None,
        }
    }

    /// An error with its own status text.
    pub fn with_status(
        code: StatusCode,
        status: impl Into<String>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            status: Some(status.into()),
        }
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

/// The JSON body of an error.
pub fn error_body(code: StatusCode, message: &str) -> serde_json::Value {
    json!({
        "status": code.canonical_reason().unwrap_or("error").to_ascii_lowercase(),
        "code": code.as_u16(),
        "error": message,
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.code.is_server_error() {
            tracing::error!(code = self.code.as_u16(), error = %self.message, "request failed");
        }
        let mut body = error_body(self.code, &self.message);
        if let Some(status) = self.status {
            body["status"] = serde_json::Value::String(status);
        }
        (self.code, Json(body)).into_response()
    }
}

impl From<isms_registry::RegistryError> for ApiError {
    fn from(error: isms_registry::RegistryError) -> ApiError {
        let code =
            StatusCode::from_u16(error.http_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::with_status(code, error.status(), error.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        let code = match &error {
            StoreError::InvalidCursor(_) | StoreError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            StoreError::DuplicateKeyName(_) | StoreError::DuplicateRecordName { .. } => {
                StatusCode::CONFLICT
            }
            StoreError::WriterStopped => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Database(_)
            | StoreError::Open { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Index(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(code, error.to_string())
    }
}
