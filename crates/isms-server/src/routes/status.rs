//! `/status` (health that really asks the store) and `/metrics` (Prometheus text).
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;

pub(crate) async fn status(State(state): State<Arc<AppState>>) -> Response {
    match state.store.health().await {
        Ok(health) => (
            StatusCode::OK,
            Json(json!({
                "status": "ok",
                "code": 200,
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_seconds": state.started.elapsed().as_secs(),
                "store": health,
            })),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "health check failed: the store does not answer");
            let code = StatusCode::SERVICE_UNAVAILABLE;
            (code, Json(json!({"status": "unavailable", "code": code.as_u16(), "error": format!("store: {error}")}))).into_response()
        }
    }
}

pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = state
        .metrics
        .as_ref()
        .map(|handle| handle.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
