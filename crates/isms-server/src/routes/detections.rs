//! The detection API: `GET /api/detections` (what the rules raised, newest first); rules:
//! `GET /api/rules` (every rule with its state, gray / green / red, and those that could not be
//! loaded), `GET|PUT|PATCH|DELETE /api/rules/{id}`, `POST /api/rules` (a rule made through the
//! API, stored as a file of `<data_dir>/rules-api/`), `PATCH` (parameters and `enabled` changed at
//! run time, any rule), `GET /api/rules/kinds` (each kind's parameters, as seed 002's detectors
//! published theirs), `POST /api/rules/suggest-message` (seed 003's Suggest button); lists:
//! `GET /api/lists`, `GET|POST|DELETE /api/lists/{name}`.
//!
//! Detections are stored as events (category `alert`, source `isms-detect`), so this is a search
//! with the detection's own filters (rule, state) composed in the predicate IR, never by pasting
//! text into a query.
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::routes::ingest::read_body_bounded;
use crate::routes::search::{detail_of, equals, newest_page};

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
    let page = newest_page(
        &state,
        parts,
        &parameters.from,
        &parameters.to,
        &parameters.limit,
        &parameters.cursor,
    )
    .await?;
    let detections: Vec<Value> = page.events.iter().map(detection_view).collect();
    Ok(Json(
        json!({"detections": detections, "next_cursor": page.next_cursor}),
    ))
}

/// A stored detection event as the API shows a detection.
fn detection_view(event: &Map<String, Value>) -> Value {
    let detail = |name: &str| detail_of(event, name);
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
    let statuses = statuses_by_rule(service);
    let rules: Vec<Value> = service
        .all_rules()
        .iter()
        .map(|rule| rule_view(&statuses, rule))
        .collect();
    let statistics = service.with_engine(|engine| engine.statistics().clone());
    let enabled: Vec<isms_detect::Rule> = service
        .all_rules()
        .into_iter()
        .filter(|rule| rule.definition.enabled)
        .collect();
    Ok(Json(json!({
        "rules": rules,
        "not_loaded": service.rule_errors(),
        "warnings": isms_detect::rule::chain_problems(&enabled),
        "statistics": statistics,
    })))
}

/// Every running rule's state, by id (one pass over the engine's state).
fn statuses_by_rule(
    service: &crate::detect::DetectService,
) -> std::collections::HashMap<String, isms_detect::RuleStatus> {
    service.with_engine(|engine| {
        engine
            .statuses()
            .into_iter()
            .map(|status| (status.rule_id.clone(), status))
            .collect()
    })
}

/// A rule as the API shows it: its definition (run-time changes included), where it comes from,
/// and its state (none while disabled).
fn rule_view(
    statuses: &std::collections::HashMap<String, isms_detect::RuleStatus>,
    rule: &isms_detect::Rule,
) -> Value {
    let status = statuses.get(rule.id());
    json!({
        "definition": rule.definition,
        "source": rule.source,
        "message": rule.definition.message.clone().unwrap_or_else(|| {
            isms_detect::template::suggest_message(&rule.definition.title, &rule.kind)
        }),
        "status": status,
    })
}

/// Runs a change of rules or lists (file writes and a reload) off the async threads; its refusal
/// becomes the matching HTTP error.
async fn run_change<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, crate::detect::RuleChangeError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?
        .map_err(change_error)
}

fn change_error(error: crate::detect::RuleChangeError) -> ApiError {
    use crate::detect::RuleChangeError;
    let code = match &error {
        RuleChangeError::Invalid(_) | RuleChangeError::BadInput(_) => StatusCode::BAD_REQUEST,
        RuleChangeError::Conflict(_) => StatusCode::CONFLICT,
        RuleChangeError::NotFound(_) => StatusCode::NOT_FOUND,
        RuleChangeError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(code, error.to_string())
}

/// Reads a JSON body into `T` (bounded while it is read), saying what is wrong with it.
async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    what: &str,
) -> Result<T, ApiError> {
    let bytes = read_body_bounded(
        headers,
        body,
        MAX_RULE_BODY_BYTES,
        "the limit of a rule or list call",
    )
    .await?;
    serde_json::from_slice(&bytes)
        .map_err(|error| ApiError::bad_request(format!("{what}: {error}")))
}

/// Largest body of a rule or list call.
const MAX_RULE_BODY_BYTES: u64 = 1024 * 1024;

fn one_rule(service: &crate::detect::DetectService, id: &str) -> Result<Value, ApiError> {
    let statuses = statuses_by_rule(service);
    service
        .all_rules()
        .iter()
        .find(|rule| rule.id() == id)
        .map(|rule| rule_view(&statuses, rule))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no such rule: {id}")))
}

pub(crate) async fn get_rule(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let service = detection_service(&state)?;
    Ok(Json(one_rule(service, &id)?))
}

/// `POST /api/rules`: a new rule, stored and running at once.
pub(crate) async fn create_rule(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let service = detection_service(&state)?.clone();
    let definition: isms_detect::RuleDefinition = json_body(&headers, body, "rule").await?;
    let id = definition.id.clone();
    let putting = service.clone();
    run_change(move || putting.put_rule(definition, false)).await?;
    Ok((StatusCode::CREATED, Json(one_rule(&service, &id)?)))
}

/// `PUT /api/rules/{id}`: replaces a rule made through the API.
pub(crate) async fn replace_rule(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let service = detection_service(&state)?.clone();
    let definition: isms_detect::RuleDefinition = json_body(&headers, body, "rule").await?;
    if definition.id != id {
        return Err(ApiError::bad_request(format!(
            "the rule's id `{}` is not the id in the path `{id}`",
            definition.id
        )));
    }
    let putting = service.clone();
    run_change(move || putting.put_rule(definition, true)).await?;
    Ok(Json(one_rule(&service, &id)?))
}

/// `PATCH /api/rules/{id}`: `{"parameters": {...}, "enabled": bool}`, for any rule (seed 002's
/// modifiable detectors); checked against the kind's parameters first.
pub(crate) async fn change_rule(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let service = detection_service(&state)?.clone();
    let change: crate::detect::RuleOverride = json_body(&headers, body, "change").await?;
    let changing = service.clone();
    let changed_id = id.clone();
    run_change(move || changing.change_rule(&changed_id, change)).await?;
    Ok(Json(one_rule(&service, &id)?))
}

/// `DELETE /api/rules/{id}`: removes a rule made through the API.
pub(crate) async fn delete_rule(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let service = detection_service(&state)?.clone();
    run_change(move || service.delete_rule(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/rules/suggest-message`: a default message for a rule (title, kind, parameters), as
/// seed 003's Suggest button.
pub(crate) async fn suggest_message(
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    #[derive(Deserialize)]
    struct Draft {
        title: String,
        kind: String,
        #[serde(default)]
        parameters: Map<String, Value>,
    }
    let draft: Draft = json_body(&headers, body, "rule").await?;
    let kind = isms_detect::KindConfig::from_parameters(&draft.kind, &draft.parameters)
        .map_err(ApiError::bad_request)?;
    Ok(Json(json!({
        "message": isms_detect::template::suggest_message(&draft.title, &kind)
    })))
}

/// `GET /api/lists`: every list with its size.
pub(crate) async fn list_lists(
    State(state): State<Arc<AppState>>,
) -> Result<Json<Value>, ApiError> {
    let service = detection_service(&state)?;
    let lists = service.with_engine(|engine| {
        engine
            .lists()
            .names()
            .map(|name| json!({"name": name, "entries": engine.lists().get(name).map_or(0, |list| list.len())}))
            .collect::<Vec<_>>()
    });
    Ok(Json(json!({"lists": lists})))
}

/// `GET /api/lists/{name}`: a list's entries.
pub(crate) async fn get_list(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let service = detection_service(&state)?;
    let entries = service
        .with_engine(|engine| engine.lists().get(&name).map(|list| list.entries()))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no such list: {name}")))?;
    Ok(Json(json!({"name": name, "entries": entries})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListEntries {
    entries: Vec<String>,
}

/// `POST /api/lists/{name}` `{"entries": [...]}`: adds entries (the list is made if need be).
pub(crate) async fn add_to_list(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    change_list(&state, name, &headers, body, true).await
}

/// `DELETE /api/lists/{name}` `{"entries": [...]}`: removes entries.
pub(crate) async fn remove_from_list(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    change_list(&state, name, &headers, body, false).await
}

/// Adds (`adding`) or removes a list's entries; answers how many changed.
async fn change_list(
    state: &AppState,
    name: String,
    headers: &HeaderMap,
    body: Body,
    adding: bool,
) -> Result<Json<Value>, ApiError> {
    let service = detection_service(state)?.clone();
    let ListEntries { entries } = json_body(headers, body, "entries").await?;
    let changed = run_change(move || {
        if adding {
            service.add_to_list(&name, &entries)
        } else {
            service.remove_from_list(&name, &entries)
        }
    })
    .await?;
    Ok(Json(
        json!({ if adding { "added" } else { "removed" }: changed }),
    ))
}

pub(crate) async fn list_kinds() -> Json<Value> {
    Json(json!({"kinds": isms_detect::KINDS}))
}
