//! The HTTP surface: which paths exist, and which need a key.
//!
//! `/status` and `/metrics` are open (health checks and Prometheus scrapers); everything that reads or
//! writes events needs a key, presented as `Authorization: Bearer KEY` or, for clients that cannot set
//! headers (the PyPI mozdef-client), as `?key=KEY`.
mod detections;
mod ingest;
mod search;
mod status;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::AppState;
use crate::error::ApiError;

/// All routes, with authentication where it belongs.
pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route(
            "/events",
            post(ingest::ingest_events).put(ingest::ingest_events),
        )
        .route(
            "/events/",
            post(ingest::ingest_events).put(ingest::ingest_events),
        )
        .route("/_bulk", post(ingest::ingest_bulk).put(ingest::ingest_bulk))
        .route("/api/events", get(search::search_events))
        .route("/api/events/count", get(search::count_events))
        .route("/api/events/histogram", get(search::histogram))
        .route("/api/events/top", get(search::top_values))
        .route("/api/events/{id}", get(search::get_event))
        .route("/api/detections", get(detections::list_detections))
        .route(
            "/api/rules",
            get(detections::list_rules).post(detections::create_rule),
        )
        .route("/api/rules/kinds", get(detections::list_kinds))
        .route(
            "/api/rules/suggest-message",
            post(detections::suggest_message),
        )
        .route(
            "/api/rules/{id}",
            get(detections::get_rule)
                .put(detections::replace_rule)
                .patch(detections::change_rule)
                .delete(detections::delete_rule),
        )
        .route("/api/lists", get(detections::list_lists))
        .route(
            "/api/lists/{name}",
            get(detections::get_list)
                .post(detections::add_to_list)
                .delete(detections::remove_from_list),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .route("/status", get(status::status))
        .route("/metrics", get(status::metrics))
        .merge(protected)
        .fallback(not_found)
        .with_state(state)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such endpoint: {} {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// The key a request presents, from the Authorization header or the `key` query parameter.
fn presented_key(request: &Request) -> Option<String> {
    if let Some(value) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    {
        let value = value.trim();
        if let Some((scheme, key)) = value.split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return Some(key.trim().to_string());
        }
        return None;
    }
    let query = request.uri().query()?;
    url_query_value(query, "key")
}

fn url_query_value(query: &str, wanted: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == wanted).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut output = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => output.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let decoded = std::str::from_utf8(&bytes[index + 1..index + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                match decoded {
                    Some(byte) => {
                        output.push(byte);
                        index += 2;
                    }
                    None => output.push(b'%'),
                }
            }
            other => output.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&output).into_owned()
}

async fn require_key(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(key) = presented_key(&request) else {
        return unauthorized(
            "this endpoint needs a key: send \"Authorization: Bearer KEY\" or add ?key=KEY",
        );
    };
    match state.keys.verify(&key).await {
        Ok(Some(caller)) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Ok(None) => {
            metrics::counter!("isms_auth_failures_total").increment(1);
            tracing::info!(
                path = request.uri().path(),
                "request with a wrong or revoked key refused"
            );
            unauthorized("the key is wrong or revoked")
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// Gives the errors the framework answers by itself the JSON shape of every other error: 405 for a method a
/// path does not take (empty body), 400 for a path or query string that cannot be decoded (plain text),
/// 408 from the timeout layer (empty body). Headers such as `Allow` are kept.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .unwrap_or_default();
    let message = if !text.is_empty() {
        text
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        // `Router::layer` wraps each route, so axum adds the `Allow` header after this runs.
        format!("{path} does not take {method} (the Allow header lists the methods it takes)")
    } else if status == StatusCode::REQUEST_TIMEOUT {
        format!("the request to {path} took too long (http.request_timeout_seconds)")
    } else {
        status.canonical_reason().unwrap_or("error").to_string()
    };
    let body = crate::error::error_body(status, &message).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body))
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"isms\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(
            url_query_value("a=1&key=ab%2Bc%3D", "key").as_deref(),
            Some("ab+c=")
        );
        assert_eq!(
            url_query_value("key=trailing%", "key").as_deref(),
            Some("trailing%")
        );
        assert_eq!(url_query_value("key=%zz", "key").as_deref(), Some("%zz"));
        assert_eq!(url_query_value("nokey", "key"), None);
    }
}
