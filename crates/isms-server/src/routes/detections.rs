//! The detection API: `GET /api/detections` (what the rules raised, newest first), `GET /api/rules`
//! (every rule with its state, gray / green / red, and those that could not be loaded) and
//! `GET /api/rules/kinds` (each kind's parameters, as seed 002's detectors published theirs).
//!
//! Detections are stored as events (category `alert`, source `isms-detect`), so this is a search
//! with the detection's own filters (rule, state) composed in the predicate IR, never by pasting
//! text into a query.
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use isms_query::{FieldPath, FieldTest, Predicate};
use isms_store::{EventFilter, SearchRequest, SortOrder};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::time_bounds::parse_time_bound;

/// Parameters of `GET /api/detections`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DetectionParameters {
    rule: Option<String>,
    state: Option<String>,
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn equals(field: &str, value: &str) -> Predicate {
    Predicate::Field {
        field: FieldPath::parse_dotted(field),
        test: FieldTest::Equals(value.to_owned()),
    }
}

pub(crate) async fn list_detections(
    State(state): State<Arc<AppState>>,
    Query(parameters): Query<DetectionParameters>,
) -> Result<Json<Value>, ApiError> {
    let mut parts = vec![equals("category", "alert"), equals("source", "isms-detect")];
    if let Some(rule) = parameters.rule.as_deref().filter(|rule| !rule.is_empty()) {
        parts.push(equals("details.rule_id", rule));
    }
    match parameters.state.as_deref() {
        None | Some("") => {}
        Some(state @ ("fired" | "cleared")) => parts.push(equals("details.state", state)),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "parameter state: expected \"fired\" or \"cleared\", found {other:?}"
            )));
        }
    }
    if let Some(query) = parameters
        .q
        .as_deref()
        .filter(|query| !query.trim().is_empty())
    {
        parts.push(
            isms_query::parse(query)
                .map_err(|error| ApiError::bad_request(format!("query q: {error}")))?,
        );
    }
    let now = jiff::Timestamp::now().as_microsecond();
    let bound = |name: &str, value: &Option<String>| -> Result<Option<i64>, ApiError> {
        match value
            .as_deref()
            .map(str::trim)
            .filter(|text| !text.is_empty())
        {
            None => Ok(None),
            Some(text) => parse_time_bound(text, now)
                .map(Some)
                .map_err(|error| ApiError::bad_request(format!("parameter {name}: {error}"))),
        }
    };
    let limit = match parameters.limit.as_deref() {
        None | Some("") => 100,
        Some(text) => match text.parse::<usize>() {
            Ok(number) if (1..=10_000).contains(&number) => number,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "parameter limit: expected a whole number from 1 to 10000, found {text:?}"
                )));
            }
        },
    };
    let request = SearchRequest {
        filter: EventFilter {
            predicate: Predicate::And(parts),
            from_micros: bound("from", &parameters.from)?,
            to_micros: bound("to", &parameters.to)?,
        },
        limit,
        cursor: parameters
            .cursor
            .clone()
            .filter(|cursor| !cursor.is_empty()),
        sort: SortOrder::Desc,
    };
    let page = state.store.search(&request).await?;
    let detections: Vec<Value> = page.events.iter().map(detection_view).collect();
    Ok(Json(
        json!({"detections": detections, "next_cursor": page.next_cursor}),
    ))
}

/// A stored detection event as the API shows a detection.
fn detection_view(event: &Map<String, Value>) -> Value {
    let details = event.get("details").and_then(Value::as_object);
    let detail = |name: &str| {
        details
            .and_then(|details| details.get(name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    json!({
        "id": event.get("id"),
        "time": event.get("utctimestamp"),
        "rule_id": detail("rule_id"),
        "rule_title": detail("rule_title"),
        "kind": detail("kind"),
        "state": detail("state"),
        "clears": detail("clears"),
        "severity": event.get("severity"),
        "tags": event.get("tags"),
        "group": detail("group"),
        "count": detail("count"),
        "related_event_ids": detail("related_event_ids"),
        "related_events_more": detail("related_events_more"),
        "first_event_time": detail("first_event_time"),
        "last_event_time": detail("last_event_time"),
        "depth": detail("depth"),
        "hostname": event.get("hostname"),
        "message": event.get("summary"),
    })
}

fn detection_service(state: &AppState) -> Result<&Arc<crate::detect::DetectService>, ApiError> {
    state.detect.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "detection is off on this server (detect.enabled = \"off\")".to_owned(),
        )
    })
}

pub(crate) async fn list_rules(
    State(state): State<Arc<AppState>>,
) -> Result<Json<Value>, ApiError> {
    let service = detection_service(&state)?;
    let (rules, statistics) = service.with_engine(|engine| {
        let statuses = engine.statuses();
        let rules: Vec<Value> = engine
            .rules()
            .zip(statuses)
            .map(|(rule, status)| {
                json!({
                    "definition": rule.definition,
                    "source": rule.source,
                    "status": status,
                })
            })
            .collect();
        (rules, engine.statistics().clone())
    });
    Ok(Json(json!({
        "rules": rules,
        "not_loaded": service.rule_errors(),
        "statistics": statistics,
    })))
}

pub(crate) async fn list_kinds() -> Json<Value> {
    Json(json!({"kinds": isms_detect::KINDS}))
}
