//! The search API: `/api/events` (pages with cursors), `/count`, `/histogram`, `/top`, and one event by id.
//!
//! Every endpoint takes the same `q`, `from` and `to`; `q` is the Lucene-style query language of
//! `isms-query`, so what a person types in the console, a script sends here and a rule matches are one
//! language with one meaning.
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use isms_query::ir::FieldPath;
use isms_store::{EventFilter, SearchRequest, SortOrder};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::time_bounds::parse_time_bound;

/// Parameters shared by every search endpoint.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchParameters {
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    sort: Option<String>,
    interval: Option<String>,
    field: Option<String>,
    n: Option<String>,
}

fn filter_of(parameters: &SearchParameters) -> Result<EventFilter, ApiError> {
    let query = parameters.q.as_deref().unwrap_or("");
    let predicate = isms_query::parse(query)
        .map_err(|error| ApiError::bad_request(format!("query q: {error}")))?;
    let (from_micros, to_micros) = time_range(&parameters.from, &parameters.to)?;
    Ok(EventFilter {
        predicate,
        from_micros,
        to_micros,
    })
}

/// The `from` and `to` parameters of a search (`now`, `-15m`, RFC 3339, ...) as microseconds.
pub(crate) fn time_range(
    from: &Option<String>,
    to: &Option<String>,
) -> Result<(Option<i64>, Option<i64>), ApiError> {
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
    Ok((bound("from", from)?, bound("to", to)?))
}

pub(crate) fn number_parameter(
    name: &str,
    value: &Option<String>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match value.as_deref() {
        None | Some("") => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(number) if (1..=max).contains(&number) => Ok(number),
            _ => Err(ApiError::bad_request(format!(
                "parameter {name}: expected a whole number from 1 to {max}, found {text:?}"
            ))),
        },
    }
}

pub(crate) async fn search_events(
    State(state): State<Arc<AppState>>,
    Query(parameters): Query<SearchParameters>,
) -> Result<Json<Value>, ApiError> {
    let filter = filter_of(&parameters)?;
    let limit = number_parameter("limit", &parameters.limit, 100, 10_000)?;
    let sort = match parameters
        .sort
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("") | Some("desc") | Some("newest") => SortOrder::Desc,
        Some("asc") | Some("oldest") => SortOrder::Asc,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "parameter sort: expected \"asc\" or \"desc\", found {other:?}"
            )));
        }
    };
    let request = SearchRequest {
        filter,
        limit,
        cursor: parameters
            .cursor
            .clone()
            .filter(|cursor| !cursor.is_empty()),
        sort,
    };
    let started = std::time::Instant::now();
    let page = state.store.search(&request).await?;
    metrics::histogram!("isms_search_seconds").record(started.elapsed().as_secs_f64());
    Ok(Json(
        json!({"events": page.events, "next_cursor": page.next_cursor}),
    ))
}

pub(crate) async fn count_events(
    State(state): State<Arc<AppState>>,
    Query(parameters): Query<SearchParameters>,
) -> Result<Json<Value>, ApiError> {
    let filter = filter_of(&parameters)?;
    Ok(Json(json!({"count": state.store.count(&filter).await?})))
}

pub(crate) async fn histogram(
    State(state): State<Arc<AppState>>,
    Query(parameters): Query<SearchParameters>,
) -> Result<Json<Value>, ApiError> {
    let filter = filter_of(&parameters)?;
    let interval_text = parameters.interval.as_deref().unwrap_or("1h");
    let interval = parse_interval(interval_text)
        .ok_or_else(|| ApiError::bad_request(format!("parameter interval: expected a duration like 30s, 5m, 1h or 1d, found {interval_text:?}")))?;
    let buckets = state.store.histogram(&filter, interval).await?;
    let buckets: Vec<Value> = buckets
        .iter()
        .map(|bucket| json!({"start": isms_event::format_time(bucket.start_micros), "start_micros": bucket.start_micros, "count": bucket.count}))
        .collect();
    Ok(Json(
        json!({"interval": interval_text, "interval_micros": interval, "buckets": buckets}),
    ))
}

fn parse_interval(text: &str) -> Option<i64> {
    crate::time_bounds::parse_duration_micros(text).filter(|micros| *micros > 0)
}

pub(crate) async fn top_values(
    State(state): State<Arc<AppState>>,
    Query(parameters): Query<SearchParameters>,
) -> Result<Json<Value>, ApiError> {
    let filter = filter_of(&parameters)?;
    let field_text = parameters.field.as_deref().map(str::trim).filter(|field| !field.is_empty()).ok_or_else(|| {
        ApiError::bad_request("parameter field: required, the field whose values to count (e.g. details.username)")
    })?;
    if field_text.len() > 256
        || !field_text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@.-".contains(c))
    {
        return Err(ApiError::bad_request(format!(
            "parameter field: {field_text:?} is not a field name (letters, digits, _ @ . -)"
        )));
    }
    let field = FieldPath::parse_dotted(field_text);
    let n = number_parameter("n", &parameters.n, 10, 1000)?;
    let values = state.store.top_values(&filter, &field, n).await?;
    Ok(Json(json!({"field": field.dotted(), "values": values})))
}

pub(crate) async fn get_event(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.store.get_event(&id).await? {
        Some(document) => Ok(Json(Value::Object(document))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no event with id {id:?}"),
        )),
    }
}

/// A test of a field's exact value (ASCII case aside), for filters an endpoint composes itself.
pub(crate) fn equals(field: &str, value: &str) -> isms_query::Predicate {
    isms_query::Predicate::Field {
        field: isms_query::FieldPath::parse_dotted(field),
        test: isms_query::FieldTest::Equals(value.to_owned()),
    }
}

/// One page, newest first, of the events matching every one of `parts` within `from`/`to`, with
/// `limit` (default 100, at most 10,000) and `cursor` as a search takes them: how the endpoints
/// that show one kind of stored event (detections, the activity log) read it.
pub(crate) async fn newest_page(
    state: &AppState,
    parts: Vec<isms_query::Predicate>,
    from: &Option<String>,
    to: &Option<String>,
    limit: &Option<String>,
    cursor: &Option<String>,
) -> Result<isms_store::SearchPage, ApiError> {
    let (from_micros, to_micros) = time_range(from, to)?;
    let request = SearchRequest {
        filter: EventFilter {
            predicate: isms_query::Predicate::And(parts),
            from_micros,
            to_micros,
        },
        limit: number_parameter("limit", limit, 100, 10_000)?,
        cursor: cursor.clone().filter(|cursor| !cursor.is_empty()),
        sort: SortOrder::Desc,
    };
    Ok(state.store.search(&request).await?)
}

/// A member of a stored event's `details` (null when absent), for the views of such events.
pub(crate) fn detail_of(event: &serde_json::Map<String, Value>, name: &str) -> Value {
    event
        .get("details")
        .and_then(Value::as_object)
        .and_then(|details| details.get(name))
        .cloned()
        .unwrap_or(Value::Null)
}
