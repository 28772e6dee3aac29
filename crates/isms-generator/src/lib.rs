//! The alert generator's side of the collector API (seed 000's generator API: register, verify,
//! update and delete itself; take the instances the collector asks it to run; report their
//! profiles; send its events).
//!
//! Why a library: `isms generator ...` uses it, and so will the host agent, so every generator
//! speaks to the collector the same way. It is small on purpose (reqwest and serde only): an agent
//! on a host should not carry the collector's store. Instances are pulled by default: a generator
//! asks for the changes after the last version it applied and the collector holds the request
//! open until there is one ([`GeneratorClient::pull_changes`]), so the generator's host needs no
//! open port. A generator registered with a `push_url` is also sent its changes there, signed
//! ([`push`]). Errors keep the collector's answer: its status text ("Generator already exists"),
//! code and message.
use serde::{Deserialize, Serialize};

pub mod push;

/// Largest answer read from the collector (a pull answers at most a few thousand changes).
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;
use serde_json::{Map, Value, json};

/// Why a call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The collector could not be reached, or the exchange broke off.
    #[error("cannot reach the collector at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The collector refused: its status text, code and message.
    #[error("{status} ({code}): {message}")]
    Refused {
        status: String,
        code: u16,
        message: String,
    },
    /// The collector's answer is not what this client understands.
    #[error("the collector's answer to {what} cannot be read: {reason}")]
    BadAnswer { what: String, reason: String },
}

/// What registering a generator takes (with an operator's key).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Registration {
    pub name: String,
    pub author: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// `registered` (its ip), an address or a network: where its key may be used from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// How often it will call in, seconds (liveness).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_interval_seconds: Option<u64>,
    /// Where the collector pushes its changes (`http://host:port/path`); pull only when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_url: Option<String>,
}

/// One change of an instance the generator is to apply.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct InstanceChange {
    pub id: String,
    pub class: String,
    pub arguments: Map<String, Value>,
    pub version: u64,
    /// Stop running it.
    pub deleted: bool,
    /// The collector asks for a profile of it.
    pub profile_requested: bool,
}

/// Changes pulled after a version, and the version to pull after next.
#[derive(Debug, Clone, Deserialize)]
pub struct Changes {
    pub changes: Vec<InstanceChange>,
    pub last_version: u64,
}

/// What an instance did, as the generator reports it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Profile {
    pub events_seen: u64,
    pub alerts_raised: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A client of one collector with one key (an operator's to register, then the generator's own).
pub struct GeneratorClient {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// Path segments are names the registry allows (letters, digits, `_-.`): nothing to escape, but
/// a name that is not one is refused here rather than sent into a path.
fn segment(name: &str) -> Result<&str, ClientError> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'));
    if valid {
        Ok(name)
    } else {
        Err(ClientError::Refused {
            status: "Invalid request".to_owned(),
            code: 422,
            message: format!("name: use 1 to 64 letters, digits, '_', '-' or '.', found {name:?}"),
        })
    }
}

/// The answer's body as text, refused past [`MAX_ANSWER_BYTES`].
async fn read_bounded(
    mut response: reqwest::Response,
) -> Result<Result<String, String>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Ok(Err(format!(
                "the answer is larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok(String::from_utf8_lossy(&body).into_owned()))
}

impl GeneratorClient {
    /// A client of the collector at `base` (`http://127.0.0.1:8080`) presenting `key`. The process
    /// must have chosen a rustls crypto provider if `base` is `https`.
    pub fn new(base: &str, key: &str) -> Result<GeneratorClient, ClientError> {
        let http =
            reqwest::Client::builder()
                .build()
                .map_err(|source| ClientError::Unreachable {
                    url: base.to_owned(),
                    source,
                })?;
        Ok(GeneratorClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
        })
    }

    /// The same collector with another key (the generator's own, after registering).
    pub fn with_key(&self, key: &str) -> GeneratorClient {
        GeneratorClient {
            http: self.http.clone(),
            base: self.base.clone(),
            key: key.to_owned(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.key)
            .query(query);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let code = response.status().as_u16();
        let text = read_bounded(response)
            .await
            .map_err(|source| ClientError::Unreachable {
                url: url.clone(),
                source,
            })?
            .map_err(|reason| ClientError::BadAnswer {
                what: format!("{method} {path}"),
                reason,
            })?;
        let answer: Value =
            serde_json::from_str(&text).map_err(|error| ClientError::BadAnswer {
                what: format!("{method} {path}"),
                reason: format!("{error} (HTTP {code}: {:.200})", text),
            })?;
        if !(200..300).contains(&code) {
            return Err(ClientError::Refused {
                status: answer["status"].as_str().unwrap_or("error").to_owned(),
                code,
                message: answer["error"].as_str().unwrap_or(&text).to_owned(),
            });
        }
        Ok(answer)
    }

    /// Registers a generator (with an operator's key); returns the collector's answer (the
    /// generator as registered) and the generator's key, shown this once.
    pub async fn register(
        &self,
        registration: &Registration,
    ) -> Result<(Value, String), ClientError> {
        segment(&registration.name)?;
        let body = serde_json::to_value(registration).map_err(|error| ClientError::BadAnswer {
            what: "the registration".to_owned(),
            reason: error.to_string(),
        })?;
        let answer = self
            .call(reqwest::Method::POST, "/api/generators", &[], Some(body))
            .await?;
        let key = answer["key"]
            .as_str()
            .ok_or_else(|| ClientError::BadAnswer {
                what: "POST /api/generators".to_owned(),
                reason: "no key in the answer".to_owned(),
            })?
            .to_owned();
        Ok((answer, key))
    }

    /// Verifies the generator is registered (with this author and ip, when given).
    pub async fn verify(
        &self,
        name: &str,
        author: Option<&str>,
        ip: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut claims = Map::new();
        if let Some(author) = author {
            claims.insert("author".to_owned(), json!(author));
        }
        if let Some(ip) = ip {
            claims.insert("ip".to_owned(), json!(ip));
        }
        let path = format!("/api/generators/{}/verify", segment(name)?);
        self.call(
            reqwest::Method::POST,
            &path,
            &[],
            Some(Value::Object(claims)),
        )
        .await
    }

    /// Changes the generator's author, ip, binding, interval or push URL (`changes` as the API takes them).
    pub async fn update(
        &self,
        name: &str,
        changes: Map<String, Value>,
    ) -> Result<Value, ClientError> {
        let path = format!("/api/generators/{}", segment(name)?);
        self.call(
            reqwest::Method::PATCH,
            &path,
            &[],
            Some(Value::Object(changes)),
        )
        .await
    }

    /// Deletes the generator (its key stops working).
    pub async fn delete(&self, name: &str) -> Result<Value, ClientError> {
        let path = format!("/api/generators/{}", segment(name)?);
        self.call(reqwest::Method::DELETE, &path, &[], None).await
    }

    /// Registers an alert group of the generator.
    pub async fn register_group(
        &self,
        generator: &str,
        group: Value,
    ) -> Result<Value, ClientError> {
        let path = format!("/api/generators/{}/groups", segment(generator)?);
        self.call(reqwest::Method::POST, &path, &[], Some(group))
            .await
    }

    /// Registers an alert class of the generator (name, group, syntax, ... as the API takes them).
    pub async fn register_class(
        &self,
        generator: &str,
        class: Value,
    ) -> Result<Value, ClientError> {
        let path = format!("/api/generators/{}/classes", segment(generator)?);
        self.call(reqwest::Method::POST, &path, &[], Some(class))
            .await
    }

    /// The changes of the generator's instances after `after`, waiting up to `wait_seconds` for
    /// one when there is none yet (the collector caps the wait).
    pub async fn pull_changes(
        &self,
        generator: &str,
        after: u64,
        wait_seconds: u64,
    ) -> Result<Changes, ClientError> {
        let path = format!("/api/generators/{}/changes", segment(generator)?);
        let answer = self
            .call(
                reqwest::Method::GET,
                &path,
                &[
                    ("after", after.to_string()),
                    ("wait", wait_seconds.to_string()),
                ],
                None,
            )
            .await?;
        serde_json::from_value(answer).map_err(|error| ClientError::BadAnswer {
            what: format!("GET {path}"),
            reason: error.to_string(),
        })
    }

    /// Tells the collector a change was applied, or why it could not be.
    pub async fn acknowledge(
        &self,
        generator: &str,
        instance: &str,
        version: u64,
        error: Option<&str>,
    ) -> Result<Value, ClientError> {
        let path = format!(
            "/api/generators/{}/instances/{}/ack",
            segment(generator)?,
            segment(instance)?
        );
        let body = json!({"version": version, "applied": error.is_none(), "error": error});
        self.call(reqwest::Method::POST, &path, &[], Some(body))
            .await
    }

    /// Reports what an instance did.
    pub async fn report_profile(
        &self,
        generator: &str,
        instance: &str,
        profile: &Profile,
    ) -> Result<Value, ClientError> {
        let path = format!(
            "/api/generators/{}/instances/{}/profile",
            segment(generator)?,
            segment(instance)?
        );
        let body = serde_json::to_value(profile).map_err(|error| ClientError::BadAnswer {
            what: "the profile".to_owned(),
            reason: error.to_string(),
        })?;
        self.call(reqwest::Method::PUT, &path, &[], Some(body))
            .await
    }

    /// Sends events (MozDef JSON objects); the collector records this generator as their sender.
    pub async fn send_events(&self, events: &[Value]) -> Result<Value, ClientError> {
        self.call(
            reqwest::Method::POST,
            "/events",
            &[],
            Some(Value::Array(events.to_vec())),
        )
        .await
    }
}
