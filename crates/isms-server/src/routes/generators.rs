//! The registry API (seed 000's alert collector views): alert generators, their alert groups and
//! alert classes are registered, verified, updated and deleted; a generator's key is made at
//! registration (shown once), rotated and revoked; `/api/audit` reads the activity log.
//!
//! Who may do what: an operator's key (any key that is not a generator's) may act on every
//! generator and is the only one that registers generators; a generator's key acts only on its own
//! generator, its groups and its classes. Every operation, done or refused, is written to the
//! activity log. Answers keep the seed's shape: `{"status": "Generator registered", "code": 201,
//! ...}`, and errors `{"status": "Generator already exists", "code": 409, "error": "..."}`.
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use isms_registry::{
    ClassChanges, ClassSpec, GeneratorChanges, GeneratorClaims, GeneratorSpec, GroupChanges,
    GroupSpec,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::generators::{AuditEntry, Outcome};
use crate::routes::ingest::read_body_bounded;
use crate::routes::search::{detail_of, equals, newest_page};

/// Largest registry request body.
const MAX_REGISTRY_BODY: u64 = 256 * 1024;

/// Who a verified key acts for: an operator, or a registered generator.
#[derive(Debug, Clone)]
pub enum Acting {
    /// A key that belongs to no generator.
    Operator,
    /// The key of this live generator.
    Generator(String),
}

/// What every registry handler knows of its caller: who the key acts for, the key's name and the
/// address, as `require_key` left them on the request.
pub(crate) struct Calling {
    acting: Acting,
    key_name: String,
    peer: SocketAddr,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Calling {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Calling, ApiError> {
        let missing = || {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the registry's routes must be behind the key check",
            )
        };
        let caller = parts.extensions.get::<Caller>().ok_or_else(missing)?;
        let acting = parts.extensions.get::<Acting>().ok_or_else(missing)?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .ok_or_else(missing)?;
        Ok(Calling {
            acting: acting.clone(),
            key_name: caller.key_name.clone(),
            peer: peer.0,
        })
    }
}

/// A handler's result, written to the activity log whichever way it went.
async fn logged<T>(
    state: &AppState,
    calling: &Calling,
    action: &str,
    generator: Option<&str>,
    object: Option<String>,
    result: Result<T, ApiError>,
) -> Result<T, ApiError> {
    let (outcome, reason) = match &result {
        Ok(_) => (Outcome::Ok, None),
        Err(error) if error.code.is_server_error() => {
            (Outcome::Failed, Some(error.message.clone()))
        }
        Err(error) => (Outcome::Refused, Some(error.message.clone())),
    };
    state
        .generators
        .audit(AuditEntry {
            action: action.to_owned(),
            generator: generator.map(str::to_owned),
            object,
            outcome,
            reason,
            peer: Some(calling.peer.ip()),
            key_name: Some(calling.key_name.clone()),
        })
        .await;
    result
}

/// Refuses a generator's key acting on another generator.
fn may_act_on(calling: &Calling, generator: &str) -> Result<(), ApiError> {
    match &calling.acting {
        Acting::Operator => Ok(()),
        Acting::Generator(own) if own == generator => Ok(()),
        Acting::Generator(own) => Err(ApiError::with_status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "this key belongs to generator {own:?}; it cannot act on generator {generator:?}"
            ),
        )),
    }
}

fn operator_only(calling: &Calling, what: &str) -> Result<(), ApiError> {
    match &calling.acting {
        Acting::Operator => Ok(()),
        Acting::Generator(own) => Err(ApiError::with_status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("the key of generator {own:?} cannot {what}; use an operator's key"),
        )),
    }
}

/// The request's JSON body as `T` (an empty body is `{}`), with where it went wrong.
async fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, ApiError> {
    let bytes = read_body_bounded(headers, body, MAX_REGISTRY_BODY, "the registry's limit").await?;
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(text).map_err(|error| {
        ApiError::with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid request",
            format!("request body: {error}"),
        )
    })
}

/// A seed-shaped answer: status text and code, then the fields.
fn answer(code: StatusCode, status: &str, fields: Value) -> (StatusCode, Json<Value>) {
    let mut body = Map::new();
    body.insert("status".to_owned(), Value::String(status.to_owned()));
    body.insert("code".to_owned(), Value::from(code.as_u16()));
    if let Value::Object(fields) = fields {
        body.extend(fields);
    }
    (code, Json(Value::Object(body)))
}

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

// ---- generators

/// A generator as the API shows it: its record without its push signing key, and when it last
/// called.
fn generator_view(state: &AppState, generator: &isms_registry::Generator) -> Value {
    let mut view = serde_json::to_value(generator.public()).unwrap_or(Value::Null);
    view["last_contact"] = state
        .generators
        .last_contact(generator)
        .map_or(Value::Null, |micros| {
            Value::String(isms_event::format_time(micros))
        });
    view
}

/// The registry's record of a key just made: its public id, and the key its pushes are signed
/// with (derived from the key, which is not kept).
fn recorded_key(record: &isms_store::KeyRecord, key: &str) -> isms_registry::RecordedKey {
    isms_registry::RecordedKey {
        key_id: record.id.clone(),
        push_signing_key: blake3::Hash::from(isms_generator::push::push_signing_key(key))
            .to_hex()
            .to_string(),
    }
}

pub(crate) async fn register_generator(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let spec: Result<GeneratorSpec, ApiError> = json_body(&headers, body).await;
    let name = spec.as_ref().map(|spec| spec.name.clone()).ok();
    let result = async {
        operator_only(&calling, "register generators")?;
        let spec = spec?;
        let registry = &state.generators.registry;
        // A registration that will be refused is refused before a key is made for it; the
        // registry checks again under its lock.
        spec.check()?;
        if registry.generator_exists(&spec.name).await? {
            return Err(isms_registry::RegistryError::already_exists(
                isms_registry::Kind::Generator,
                spec.name.clone(),
                None,
            )
            .into());
        }
        let (record, key) =
            crate::auth::create_key(state.store.as_ref(), &generator_key_name(&spec.name), None)
                .await
                .map_err(key_error)?;
        match registry
            .register_generator(spec, Some(recorded_key(&record, &key)))
            .await
        {
            Ok(generator) => {
                state.generators.refresh_pushes().await;
                Ok(answer(
                    StatusCode::CREATED,
                    "Generator registered",
                    json!({"generator": generator_view(&state, &generator), "key": key}),
                ))
            }
            Err(error) => {
                revoke_key(&state, &record.id).await;
                Err(error.into())
            }
        }
    }
    .await;
    logged(
        &state,
        &calling,
        "register_generator",
        name.as_deref(),
        None,
        result,
    )
    .await
}

/// A generator's key is named after it: the events it sends record `generator:NAME` as their key.
fn generator_key_name(generator: &str) -> String {
    format!("generator:{generator}")
}

fn key_error(error: crate::auth::KeyError) -> ApiError {
    match error {
        crate::auth::KeyError::Store(error) => error.into(),
        other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

async fn revoke_key(state: &AppState, key_id: &str) {
    let now = jiff::Timestamp::now().as_microsecond();
    if let Err(error) = state.store.revoke_key(key_id, now).await {
        tracing::error!(%error, key_id, "a generator's key could not be revoked");
    }
    state.keys.forget_key(key_id);
}

pub(crate) async fn list_generators(
    State(state): State<Arc<AppState>>,
    calling: Calling,
) -> Result<Json<Value>, ApiError> {
    let mut generators = state.generators.registry.generators().await?;
    if let Acting::Generator(own) = &calling.acting {
        generators.retain(|generator| &generator.name == own);
    }
    let views: Vec<Value> = generators
        .iter()
        .map(|generator| generator_view(&state, generator))
        .collect();
    Ok(Json(json!({"generators": views})))
}

pub(crate) async fn get_generator(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path(name): Path<String>,
) -> Answer {
    may_act_on(&calling, &name)?;
    let generator = state.generators.registry.generator(&name).await?;
    Ok(answer(
        StatusCode::OK,
        "Generator found",
        json!({"generator": generator_view(&state, &generator)}),
    ))
}

pub(crate) async fn verify_generator(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let result = async {
        may_act_on(&calling, &name)?;
        let claims: GeneratorClaims = json_body(&headers, body).await?;
        let generator = state
            .generators
            .registry
            .verify_generator(&name, claims)
            .await?;
        Ok(answer(
            StatusCode::OK,
            "Generator verified",
            json!({"generator": generator_view(&state, &generator)}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "verify_generator",
        Some(&name),
        None,
        result,
    )
    .await
}

pub(crate) async fn update_generator(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let result = async {
        may_act_on(&calling, &name)?;
        let changes: GeneratorChanges = json_body(&headers, body).await?;
        if changes.push_url.is_some() {
            // The collector would POST there: only an operator chooses where.
            operator_only(&calling, "change where its changes are pushed")?;
        }
        let generator = state
            .generators
            .registry
            .update_generator(&name, changes)
            .await?;
        state.generators.refresh_pushes().await;
        Ok(answer(
            StatusCode::OK,
            "Generator updated",
            json!({"generator": generator_view(&state, &generator)}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "update_generator",
        Some(&name),
        None,
        result,
    )
    .await
}

pub(crate) async fn delete_generator(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path(name): Path<String>,
) -> Answer {
    let result = async {
        may_act_on(&calling, &name)?;
        let generator = state.generators.registry.delete_generator(&name).await?;
        if let Some(key_id) = &generator.key_id {
            revoke_key(&state, key_id).await;
        }
        state.generators.refresh_pushes().await;
        Ok(answer(
            StatusCode::OK,
            "Generator deleted",
            json!({"generator": generator_view(&state, &generator)}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "delete_generator",
        Some(&name),
        None,
        result,
    )
    .await
}

/// `POST /api/generators/{name}/key`: a new key (shown once); the old one is revoked.
pub(crate) async fn rotate_key(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path(name): Path<String>,
) -> Answer {
    let result = async {
        may_act_on(&calling, &name)?;
        let registry = &state.generators.registry;
        let current = registry.generator(&name).await?;
        // The old key is revoked first: its name is free for the new one.
        if let Some(key_id) = &current.key_id {
            revoke_key(&state, key_id).await;
        }
        let (record, key) =
            crate::auth::create_key(state.store.as_ref(), &generator_key_name(&name), None)
                .await
                .map_err(key_error)?;
        let (generator, _) = registry
            .set_generator_key(&name, Some(recorded_key(&record, &key)))
            .await?;
        state.generators.refresh_pushes().await;
        Ok(answer(
            StatusCode::CREATED,
            "Generator key rotated",
            json!({"generator": generator_view(&state, &generator), "key": key}),
        ))
    }
    .await;
    logged(&state, &calling, "rotate_key", Some(&name), None, result).await
}

/// `DELETE /api/generators/{name}/key`: the generator keeps its registration, without a key
/// (an operator rotates to give it a new one).
pub(crate) async fn revoke_generator_key(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path(name): Path<String>,
) -> Answer {
    let result = async {
        may_act_on(&calling, &name)?;
        let (generator, previous) = state
            .generators
            .registry
            .set_generator_key(&name, None)
            .await?;
        if let Some(key_id) = &previous {
            revoke_key(&state, key_id).await;
        }
        state.generators.refresh_pushes().await;
        Ok(answer(
            StatusCode::OK,
            "Generator key revoked",
            json!({"generator": generator_view(&state, &generator)}),
        ))
    }
    .await;
    logged(&state, &calling, "revoke_key", Some(&name), None, result).await
}

// ---- groups

pub(crate) async fn list_groups(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path(generator): Path<String>,
) -> Result<Json<Value>, ApiError> {
    may_act_on(&calling, &generator)?;
    let groups = state.generators.registry.groups(&generator).await?;
    Ok(Json(json!({"groups": groups})))
}

pub(crate) async fn register_group(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path(generator): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let spec: Result<GroupSpec, ApiError> = json_body(&headers, body).await;
    let object = spec
        .as_ref()
        .ok()
        .map(|spec| format!("group {}", spec.name));
    let result = async {
        may_act_on(&calling, &generator)?;
        let group = state
            .generators
            .registry
            .register_group(&generator, spec?)
            .await?;
        Ok(answer(
            StatusCode::CREATED,
            "Group registered",
            json!({"group": group}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "register_group",
        Some(&generator),
        object,
        result,
    )
    .await
}

pub(crate) async fn get_group(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path((generator, name)): Path<(String, String)>,
) -> Answer {
    may_act_on(&calling, &generator)?;
    let group = state.generators.registry.group(&generator, &name).await?;
    Ok(answer(
        StatusCode::OK,
        "Group found",
        json!({"group": group}),
    ))
}

pub(crate) async fn verify_group(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path((generator, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let result = async {
        may_act_on(&calling, &generator)?;
        let claims: GroupChanges = json_body(&headers, body).await?;
        let group = state
            .generators
            .registry
            .verify_group(&generator, &name, claims)
            .await?;
        Ok(answer(
            StatusCode::OK,
            "Group verified",
            json!({"group": group}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "verify_group",
        Some(&generator),
        Some(format!("group {name}")),
        result,
    )
    .await
}

pub(crate) async fn update_group(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path((generator, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let result = async {
        may_act_on(&calling, &generator)?;
        let changes: GroupChanges = json_body(&headers, body).await?;
        let group = state
            .generators
            .registry
            .update_group(&generator, &name, changes)
            .await?;
        Ok(answer(
            StatusCode::OK,
            "Group updated",
            json!({"group": group}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "update_group",
        Some(&generator),
        Some(format!("group {name}")),
        result,
    )
    .await
}

pub(crate) async fn delete_group(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path((generator, name)): Path<(String, String)>,
) -> Answer {
    let result = async {
        may_act_on(&calling, &generator)?;
        let group = state
            .generators
            .registry
            .delete_group(&generator, &name)
            .await?;
        // Its classes' instances were removed with it.
        state.generators.instances_changed(&generator);
        Ok(answer(
            StatusCode::OK,
            "Group deleted",
            json!({"group": group}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "delete_group",
        Some(&generator),
        Some(format!("group {name}")),
        result,
    )
    .await
}

// ---- classes

/// A class as the API shows it: its own fields, and `parameters` with those it inherits.
fn class_view(
    class: &isms_registry::AlertClass,
    parameters: &[isms_registry::Parameter],
) -> Result<Value, ApiError> {
    let unwritable = |error: serde_json::Error| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
    };
    let mut view = serde_json::to_value(class).map_err(unwritable)?;
    view["parameters"] = serde_json::to_value(parameters).map_err(unwritable)?;
    Ok(view)
}

/// [`class_view`] of one class, its inherited parameters read from the registry.
async fn read_class_view(
    state: &AppState,
    class: &isms_registry::AlertClass,
) -> Result<Value, ApiError> {
    let parameters = state
        .generators
        .registry
        .class_parameters(&class.generator, &class.name)
        .await?;
    class_view(class, &parameters)
}

pub(crate) async fn list_classes(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path(generator): Path<String>,
) -> Result<Json<Value>, ApiError> {
    may_act_on(&calling, &generator)?;
    let mut views = Vec::new();
    for (class, parameters) in state
        .generators
        .registry
        .classes_with_parameters(&generator)
        .await?
    {
        views.push(class_view(&class, &parameters)?);
    }
    Ok(Json(json!({"classes": views})))
}

pub(crate) async fn register_class(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path(generator): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let spec: Result<ClassSpec, ApiError> = json_body(&headers, body).await;
    let object = spec
        .as_ref()
        .ok()
        .map(|spec| format!("class {}", spec.name));
    let result = async {
        may_act_on(&calling, &generator)?;
        let class = state
            .generators
            .registry
            .register_class(&generator, spec?)
            .await?;
        let view = read_class_view(&state, &class).await?;
        Ok(answer(
            StatusCode::CREATED,
            "Class registered",
            json!({"class": view}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "register_class",
        Some(&generator),
        object,
        result,
    )
    .await
}

pub(crate) async fn get_class(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path((generator, name)): Path<(String, String)>,
) -> Answer {
    may_act_on(&calling, &generator)?;
    let class = state.generators.registry.class(&generator, &name).await?;
    let view = read_class_view(&state, &class).await?;
    Ok(answer(
        StatusCode::OK,
        "Class found",
        json!({"class": view}),
    ))
}

/// What `verify` of a class may claim.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClassClaims {
    #[serde(default)]
    group: Option<String>,
}

pub(crate) async fn verify_class(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path((generator, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let result = async {
        may_act_on(&calling, &generator)?;
        let claims: ClassClaims = json_body(&headers, body).await?;
        let class = state
            .generators
            .registry
            .verify_class(&generator, &name, claims.group.as_deref())
            .await?;
        let view = read_class_view(&state, &class).await?;
        Ok(answer(
            StatusCode::OK,
            "Class verified",
            json!({"class": view}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "verify_class",
        Some(&generator),
        Some(format!("class {name}")),
        result,
    )
    .await
}

pub(crate) async fn update_class(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path((generator, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let result = async {
        may_act_on(&calling, &generator)?;
        let changes: ClassChanges = json_body(&headers, body).await?;
        let class = state
            .generators
            .registry
            .update_class(&generator, &name, changes)
            .await?;
        let view = read_class_view(&state, &class).await?;
        Ok(answer(
            StatusCode::OK,
            "Class updated",
            json!({"class": view}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "update_class",
        Some(&generator),
        Some(format!("class {name}")),
        result,
    )
    .await
}

pub(crate) async fn delete_class(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path((generator, name)): Path<(String, String)>,
) -> Answer {
    let result = async {
        may_act_on(&calling, &generator)?;
        let class = state
            .generators
            .registry
            .delete_class(&generator, &name)
            .await?;
        Ok(answer(
            StatusCode::OK,
            "Class deleted",
            json!({"class": class}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "delete_class",
        Some(&generator),
        Some(format!("class {name}")),
        result,
    )
    .await
}

// ---- the activity log

/// Parameters of `GET /api/audit`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditParameters {
    generator: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/audit`: the activity log, newest first; a generator's key sees its own entries.
pub(crate) async fn list_audit(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Query(parameters): Query<AuditParameters>,
) -> Result<Json<Value>, ApiError> {
    let mut parts = vec![
        equals("category", "audit"),
        equals("source", "isms-registry"),
    ];
    let mut generator = parameters.generator.clone().filter(|name| !name.is_empty());
    if let Acting::Generator(own) = &calling.acting {
        if generator.as_ref().is_some_and(|asked| asked != own) {
            return Err(ApiError::with_status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("the key of generator {own:?} reads only its own activity"),
            ));
        }
        generator = Some(own.clone());
    }
    if let Some(generator) = &generator {
        parts.push(equals("details.generator", generator));
    }
    if let Some(action) = parameters
        .action
        .as_deref()
        .filter(|action| !action.is_empty())
    {
        parts.push(equals("details.action", action));
    }
    match parameters.outcome.as_deref() {
        None | Some("") => {}
        Some(outcome @ ("ok" | "refused" | "failed")) => {
            parts.push(equals("details.outcome", outcome))
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "parameter outcome: expected \"ok\", \"refused\" or \"failed\", found {other:?}"
            )));
        }
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
    let entries: Vec<Value> = page.events.iter().map(audit_view).collect();
    Ok(Json(
        json!({"entries": entries, "next_cursor": page.next_cursor}),
    ))
}

/// A stored audit event as an activity-log entry.
fn audit_view(event: &Map<String, Value>) -> Value {
    let detail = |name: &str| detail_of(event, name);
    json!({
        "id": event.get("id"),
        "time": event.get("utctimestamp"),
        "level": detail("level"),
        "action": detail("action"),
        "outcome": detail("outcome"),
        "generator": detail("generator"),
        "object": detail("object"),
        "reason": detail("reason"),
        "address": detail("sourceipaddress"),
        "key": detail("key"),
    })
}

// ---- instances

/// Refuses what only the generator itself does (it runs the instance, so only it acknowledges
/// or reports).
fn generator_itself(calling: &Calling, generator: &str, what: &str) -> Result<(), ApiError> {
    match &calling.acting {
        Acting::Generator(own) if own == generator => Ok(()),
        Acting::Generator(own) => Err(ApiError::with_status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "this key belongs to generator {own:?}; it cannot act on generator {generator:?}"
            ),
        )),
        Acting::Operator => Err(ApiError::with_status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("only generator {generator:?}, with its own key, can {what}"),
        )),
    }
}

pub(crate) async fn instantiate(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path(generator): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let spec: Result<isms_registry::InstanceSpec, ApiError> = json_body(&headers, body).await;
    let object = spec
        .as_ref()
        .ok()
        .map(|spec| format!("class {}", spec.class));
    let result = async {
        operator_only(&calling, "instantiate alert classes")?;
        let instance = state
            .generators
            .registry
            .instantiate(&generator, spec?)
            .await?;
        state.generators.instances_changed(&generator);
        Ok(answer(
            StatusCode::CREATED,
            "alert generator instantiated",
            json!({"instance": instance}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "instantiate",
        Some(&generator),
        object,
        result,
    )
    .await
}

pub(crate) async fn list_instances(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path(generator): Path<String>,
) -> Result<Json<Value>, ApiError> {
    may_act_on(&calling, &generator)?;
    let instances = state.generators.registry.instances(&generator).await?;
    Ok(Json(json!({"instances": instances})))
}

pub(crate) async fn get_instance(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path((generator, id)): Path<(String, String)>,
) -> Answer {
    may_act_on(&calling, &generator)?;
    let instance = state.generators.registry.instance(&generator, &id).await?;
    Ok(answer(
        StatusCode::OK,
        "Instance found",
        json!({"instance": instance}),
    ))
}

/// What changing an instance takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InstanceChange {
    arguments: Map<String, Value>,
}

pub(crate) async fn reconfigure_instance(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path((generator, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let result = async {
        operator_only(&calling, "change instances")?;
        let change: InstanceChange = json_body(&headers, body).await?;
        let instance = state
            .generators
            .registry
            .reconfigure_instance(&generator, &id, change.arguments)
            .await?;
        state.generators.instances_changed(&generator);
        Ok(answer(
            StatusCode::OK,
            "Instance changed",
            json!({"instance": instance}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "reconfigure_instance",
        Some(&generator),
        Some(format!("instance {id}")),
        result,
    )
    .await
}

pub(crate) async fn remove_instance(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path((generator, id)): Path<(String, String)>,
) -> Answer {
    let result = async {
        operator_only(&calling, "remove instances")?;
        let instance = state
            .generators
            .registry
            .remove_instance(&generator, &id)
            .await?;
        state.generators.instances_changed(&generator);
        Ok(answer(
            StatusCode::OK,
            "Instance removed",
            json!({"instance": instance}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "remove_instance",
        Some(&generator),
        Some(format!("instance {id}")),
        result,
    )
    .await
}

/// `POST .../instances/{id}/profile-request`: the collector asks for a fresh profile (seed:
/// `profile_alert_generator`), delivered to the generator as a change.
pub(crate) async fn request_profile(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path((generator, id)): Path<(String, String)>,
) -> Answer {
    let result = async {
        operator_only(&calling, "ask for profiles")?;
        let instance = state
            .generators
            .registry
            .request_profile(&generator, &id)
            .await?;
        state.generators.instances_changed(&generator);
        Ok(answer(
            StatusCode::OK,
            "Profile requested",
            json!({"instance": instance}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "request_profile",
        Some(&generator),
        Some(format!("instance {id}")),
        result,
    )
    .await
}

/// `PUT .../instances/{id}/profile`: the generator reports what the instance did.
pub(crate) async fn report_profile(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path((generator, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let result = async {
        generator_itself(&calling, &generator, "report profiles")?;
        let profile: isms_registry::Profile = json_body(&headers, body).await?;
        let instance = state
            .generators
            .registry
            .report_profile(&generator, &id, profile)
            .await?;
        Ok(answer(
            StatusCode::OK,
            "Profile reported",
            json!({"instance": instance}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "report_profile",
        Some(&generator),
        Some(format!("instance {id}")),
        result,
    )
    .await
}

/// `POST .../instances/{id}/ack`: the generator applied a change (or could not).
pub(crate) async fn acknowledge(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path((generator, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let result = async {
        generator_itself(&calling, &generator, "acknowledge changes")?;
        let acknowledgement: isms_registry::Acknowledgement = json_body(&headers, body).await?;
        let instance = state
            .generators
            .registry
            .acknowledge(&generator, &id, acknowledgement)
            .await?;
        Ok(answer(
            StatusCode::OK,
            "Change acknowledged",
            json!({"instance": instance}),
        ))
    }
    .await;
    logged(
        &state,
        &calling,
        "acknowledge",
        Some(&generator),
        Some(format!("instance {id}")),
        result,
    )
    .await
}

/// A query parameter that is a whole number from 0 to `most` (0 when absent).
fn whole_number(name: &str, value: &Option<String>, most: u64) -> Result<u64, ApiError> {
    match value.as_deref() {
        None | Some("") => Ok(0),
        Some(text) => match text.parse::<u64>() {
            Ok(number) if number <= most => Ok(number),
            _ => Err(ApiError::bad_request(format!(
                "parameter {name}: expected a whole number from 0 to {most}, found {text:?}"
            ))),
        },
    }
}

/// Parameters of `GET .../changes`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ChangesParameters {
    after: Option<String>,
    wait: Option<String>,
}

/// `GET /api/generators/{name}/changes?after=N&wait=S`: the changes of the generator's instances
/// after version N; when there are none, waits up to S seconds for one (long-poll: the generator
/// needs no open port). The log records only pulls that delivered something.
pub(crate) async fn pull_changes(
    State(state): State<Arc<AppState>>,
    calling: Calling,
    Path(generator): Path<String>,
    Query(parameters): Query<ChangesParameters>,
) -> Result<Json<Value>, ApiError> {
    may_act_on(&calling, &generator)?;
    let after = whole_number("after", &parameters.after, u64::MAX)?;
    let wait = whole_number(
        "wait",
        &parameters.wait,
        state.generators.max_wait().as_secs(),
    )?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
    // Subscribed once the generator is known to exist, and read again after that before
    // waiting, so no change falls between the read and the wait.
    let mut signal: Option<tokio::sync::watch::Receiver<u64>> = None;
    loop {
        if let Some(signal) = signal.as_mut() {
            signal.borrow_and_update();
        }
        let changes = state.generators.registry.changes(&generator, after).await?;
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !changes.is_empty() || remaining.is_zero() {
            let last_version = changes.last().map_or(after, |change| change.version);
            if !changes.is_empty() {
                let delivered: Vec<String> = changes
                    .iter()
                    .map(|change| format!("{}@{}", change.id, change.version))
                    .collect();
                let _ = logged(
                    &state,
                    &calling,
                    "pull_changes",
                    Some(&generator),
                    Some(format!("instances {}", delivered.join(" "))),
                    Ok::<(), ApiError>(()),
                )
                .await;
            }
            return Ok(Json(
                json!({"changes": changes, "last_version": last_version}),
            ));
        }
        match signal.as_mut() {
            None => signal = Some(state.generators.watch_instances(&generator)),
            // Woken by a change of this generator's instances, or at the deadline.
            Some(signal) => {
                let _ = tokio::time::timeout(remaining, signal.changed()).await;
            }
        }
    }
}
