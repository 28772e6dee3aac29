//! The HTTP surface: which paths exist, and which need a key.
//!
//! `/status` and `/metrics` are open (health checks and Prometheus scrapers); everything that reads or
//! writes events needs a key, presented as `Authorization: Bearer KEY` or, for clients that cannot set
//! headers (the PyPI mozdef-client), as `?key=KEY`.
mod detections;
pub mod generators;
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
        .route(
            "/api/generators",
            get(generators::list_generators).post(generators::register_generator),
        )
        .route(
            "/api/generators/{name}",
            get(generators::get_generator)
                .patch(generators::update_generator)
                .delete(generators::delete_generator),
        )
        .route(
            "/api/generators/{name}/verify",
            post(generators::verify_generator),
        )
        .route(
            "/api/generators/{name}/key",
            post(generators::rotate_key).delete(generators::revoke_generator_key),
        )
        .route(
            "/api/generators/{name}/groups",
            get(generators::list_groups).post(generators::register_group),
        )
        .route(
            "/api/generators/{name}/groups/{group}",
            get(generators::get_group)
                .patch(generators::update_group)
                .delete(generators::delete_group),
        )
        .route(
            "/api/generators/{name}/groups/{group}/verify",
            post(generators::verify_group),
        )
        .route(
            "/api/generators/{name}/classes",
            get(generators::list_classes).post(generators::register_class),
        )
        .route(
            "/api/generators/{name}/classes/{class}",
            get(generators::get_class)
                .patch(generators::update_class)
                .delete(generators::delete_class),
        )
        .route(
            "/api/generators/{name}/classes/{class}/verify",
            post(generators::verify_class),
        )
        .route(
            "/api/generators/{name}/instances",
            get(generators::list_instances).post(generators::instantiate),
        )
        .route(
            "/api/generators/{name}/instances/{id}",
            get(generators::get_instance)
                .patch(generators::reconfigure_instance)
                .delete(generators::remove_instance),
        )
        .route(
            "/api/generators/{name}/instances/{id}/ack",
            post(generators::acknowledge),
        )
        .route(
            "/api/generators/{name}/instances/{id}/profile",
            axum::routing::put(generators::report_profile),
        )
        .route(
            "/api/generators/{name}/instances/{id}/profile-request",
            post(generators::request_profile),
        )
        .route(
            "/api/generators/{name}/changes",
            get(generators::pull_changes),
        )
        .route("/api/audit", get(generators::list_audit))
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
        .route("/api/openapi.json", get(openapi))
        .merge(protected)
        .fallback(not_found)
        .with_state(state)
}

/// The OpenAPI document of the registry API (`src/openapi.json`, kept by hand beside the routes;
/// `tests/generators.rs` requests every path and method it names).
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
        .into_response()
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

/// Checks the key a request presents: refused without a check when its address has failed too
/// often (`generators.max_key_failures_per_minute`), refused when wrong or revoked, and,
/// for a generator's key, refused from outside the addresses the generator is bound to. Every
/// refusal goes to the activity log (until the address is rate-limited: then once).
async fn require_key(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    if let Some(wait) = peer.and_then(|peer| state.generators.refused_for(peer)) {
        metrics::counter!("isms_auth_rate_limited_total").increment(1);
        return ApiError::with_status(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed keys",
            format!(
                "too many wrong keys from this address; try again in {} s",
                wait.as_secs().max(1)
            ),
        )
        .into_response();
    }
    let Some(key) = presented_key(&request) else {
        return unauthorized(
            "this endpoint needs a key: send \"Authorization: Bearer KEY\" or add ?key=KEY",
        );
    };
    let caller = match state.keys.verify(&key).await {
        Ok(Some(caller)) => caller,
        Ok(None) => {
            metrics::counter!("isms_auth_failures_total").increment(1);
            tracing::info!(
                path = request.uri().path(),
                "request with a wrong or revoked key refused"
            );
            let mut reason = format!(
                "a wrong or revoked key on {} {}",
                request.method(),
                request.uri().path()
            );
            if peer.is_some_and(|peer| state.generators.count_failure(peer)) {
                reason.push_str("; this address is refused for a minute");
            }
            log_refused_key(&state, None, reason, peer, None).await;
            return unauthorized("the key is wrong or revoked");
        }
        Err(error) => return ApiError::from(error).into_response(),
    };
    let generator = match state.generators.generator_of_key(&caller.key_id).await {
        Ok(generator) => generator,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let acting = match generator {
        None => generators::Acting::Operator,
        Some(generator) => {
            if let Some(peer) = peer
                && !generator.address_allowed(peer)
            {
                let reason = format!(
                    "the key of generator {:?} used from {peer}, outside its bound addresses ({})",
                    generator.name,
                    generator.bind.as_deref().unwrap_or_default()
                );
                let refusal =
                    ApiError::with_status(StatusCode::FORBIDDEN, "Address not allowed", &reason);
                log_refused_key(
                    &state,
                    Some(&generator.name),
                    reason,
                    Some(peer),
                    Some(&caller),
                )
                .await;
                return refusal.into_response();
            }
            if !generator_may_call(request.uri().path()) {
                let reason = format!(
                    "the key of generator {:?} may send events and act on its own registration only, not {} {}",
                    generator.name,
                    request.method(),
                    request.uri().path()
                );
                let refusal = ApiError::with_status(StatusCode::FORBIDDEN, "Forbidden", &reason);
                log_refused_key(&state, Some(&generator.name), reason, peer, Some(&caller)).await;
                return refusal.into_response();
            }
            state.generators.record_contact(&generator);
            generators::Acting::Generator(generator.name)
        }
    };
    request.extensions_mut().insert(caller);
    request.extensions_mut().insert(acting);
    next.run(request).await
}

/// Writes a refused key check to the activity log (action `authenticate`).
async fn log_refused_key(
    state: &AppState,
    generator: Option<&str>,
    reason: String,
    peer: Option<std::net::IpAddr>,
    caller: Option<&crate::auth::Caller>,
) {
    state
        .generators
        .audit(crate::generators::AuditEntry {
            action: "authenticate".to_owned(),
            generator: generator.map(str::to_owned),
            object: None,
            outcome: crate::generators::Outcome::Refused,
            reason: Some(reason),
            peer,
            key_name: caller.map(|caller| caller.key_name.clone()),
        })
        .await;
}

/// Whether a generator's key may call `path`: ingestion, the registry (whose handlers keep it to
/// its own records) and the activity log (its own entries). Searching everyone's events or changing
/// rules is for operators' keys.
fn generator_may_call(path: &str) -> bool {
    matches!(
        path,
        "/events" | "/events/" | "/_bulk" | "/api/generators" | "/api/audit"
    ) || path.starts_with("/api/generators/")
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
