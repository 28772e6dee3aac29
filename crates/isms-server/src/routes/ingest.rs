//! `POST`/`PUT /events`, `/events/` and `/_bulk`: MozDef loginput-compatible ingestion.
//!
//! The handler reads the body under a byte bound, decodes and normalizes every item off the async
//! threads, hands the good events to the store, and answers only after the store committed them. One bad
//! item never costs the good ones: the answer lists every rejected item with its index and reason, and the
//! accepted count. When any item was rejected the status is 400, so clients notice, but the accepted
//! events are stored and must not be sent again.
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use isms_event::{Delivery, Origin, normalize_delivered};
use serde_json::json;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::ingest::body::{BodyFormat, ContentEncoding, DecodedItem, decode_body};

/// Rejected items listed in one answer; the count covers all of them.
const MAX_LISTED_REJECTIONS: usize = 100;

/// Reads a request body, refusing it as soon as it passes `limit` bytes (`limit_name` says which
/// limit in the answer).
pub(crate) async fn read_body_bounded(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    limit_name: &str,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds {limit_name} ({limit} bytes)"),
        )
    };
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok())
        && length > limit
    {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error)
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(error) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {error}"
        ))),
    }
}

pub(crate) async fn ingest_events(
    state: State<Arc<AppState>>,
    caller: axum::Extension<Caller>,
    peer: ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    ingest(state, caller, peer, uri, headers, body, BodyFormat::Events).await
}

pub(crate) async fn ingest_bulk(
    state: State<Arc<AppState>>,
    caller: axum::Extension<Caller>,
    peer: ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    ingest(state, caller, peer, uri, headers, body, BodyFormat::Bulk).await
}

async fn ingest(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    format: BodyFormat,
) -> Result<Response, ApiError> {
    let endpoint = uri.path().to_string();
    let encoding_header = headers
        .get(header::CONTENT_ENCODING)
        .map(|value| value.to_str().unwrap_or("(not text)").to_string());
    let encoding = ContentEncoding::from_header(encoding_header.as_deref()).map_err(|error| {
        ApiError::new(
            StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
            error.to_string(),
        )
    })?;
    let raw = read_body_bounded(
        &headers,
        body,
        state.limits.max_body_bytes,
        "max_body_bytes",
    )
    .await?;
    let limits = state.limits.body.clone();
    let origin = Origin {
        peer: Some(peer.to_string()),
        endpoint: endpoint.clone(),
        key_name: Some(caller.key_name.clone()),
    };
    let received = jiff::Timestamp::now();
    let decoded = tokio::task::spawn_blocking(move || {
        let decoded = decode_body(&raw, encoding, format, &limits)?;
        let delivery = Delivery::new(&origin, received);
        let mut events = Vec::with_capacity(decoded.items.len());
        let mut rejected = Vec::new();
        for (index, item) in decoded.items.into_iter().enumerate() {
            match item {
                DecodedItem::Event(value) => match normalize_delivered(value, &delivery) {
                    Ok(event) => events.push(event),
                    Err(error) => rejected.push((index, error.to_string())),
                },
                DecodedItem::Rejected { index, reason, .. } => rejected.push((index, reason)),
            }
        }
        Ok::<_, crate::ingest::body::BodyError>((events, rejected))
    })
    .await
    .map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("decoding failed: {error}"),
        )
    })?;
    let (events, rejected) = decoded.map_err(|error| {
        ApiError::new(
            StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
            error.to_string(),
        )
    })?;
    let accepted = events.len();
    if accepted > 0 {
        state.store.append(events).await?;
    }
    metrics::counter!("isms_ingest_events_total", "endpoint" => endpoint.clone(), "outcome" => "accepted").increment(accepted as u64);
    metrics::counter!("isms_ingest_events_total", "endpoint" => endpoint.clone(), "outcome" => "rejected").increment(rejected.len() as u64);
    if rejected.is_empty() {
        return Ok((
            StatusCode::OK,
            Json(json!({"status": "ok", "code": 200, "accepted": accepted, "rejected": []})),
        )
            .into_response());
    }
    tracing::debug!(%peer, endpoint, accepted, rejected = rejected.len(), "ingest request had rejected items");
    let first = &rejected[0];
    let message = format!(
        "{} of {} items rejected (item {}: {}); the {} accepted are stored, do not send them again",
        rejected.len(),
        accepted + rejected.len(),
        first.0,
        first.1,
        accepted
    );
    let listed: Vec<serde_json::Value> = rejected
        .iter()
        .take(MAX_LISTED_REJECTIONS)
        .map(|(index, reason)| json!({"index": index, "error": reason}))
        .collect();
    let code = StatusCode::BAD_REQUEST;
    Ok((
        code,
        Json(json!({
            "status": "rejected",
            "code": code.as_u16(),
            "error": message,
            "accepted": accepted,
            "rejected_count": rejected.len(),
            "rejected": listed,
        })),
    )
        .into_response())
}
