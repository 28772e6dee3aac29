//! A small HTTP client for the server's API, shared by `search` and `send`.
use anyhow::{Context, anyhow, bail};
use serde_json::Value;

use crate::ServerFlags;

/// A client bound to one server and key.
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl ApiClient {
    /// Builds a client; fails with a hint when no key was given.
    pub fn new(flags: &ServerFlags) -> anyhow::Result<ApiClient> {
        let key = flags.key.clone().filter(|key| !key.is_empty()).ok_or_else(|| {
            anyhow!("no key: pass --key KEY or set ISMS_KEY (isms serve prints the first key; isms key create makes more)")
        })?;
        let http = reqwest::Client::builder()
            .build()
            .context("cannot build the HTTP client")?;
        Ok(ApiClient {
            http,
            base: flags.url.trim_end_matches('/').to_string(),
            key,
        })
    }

    /// GET a JSON document.
    pub async fn get_json(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.base, path);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.key)
            .query(query)
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {url}"))?;
        decode(response).await
    }

    /// POST a body to an ingestion endpoint; returns the status code and the JSON answer.
    pub async fn post_events(&self, body: Vec<u8>, gzip: bool) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}/events", self.base);
        let mut request = self
            .http
            .post(&url)
            .bearer_auth(&self.key)
            .header("content-type", "application/x-ndjson");
        let body = if gzip {
            use std::io::Write as _;
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&body)?;
            request = request.header("content-encoding", "gzip");
            encoder.finish()?
        } else {
            body
        };
        let response = request
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {url}"))?;
        let (status, value) = read_json(response).await?;
        Ok((status.as_u16(), value))
    }
}

/// The status and JSON body of an answer; a body that is not JSON is an error quoting its start.
async fn read_json(response: reqwest::Response) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let status = response.status();
    let text = response
        .text()
        .await
        .context("cannot read the server's answer")?;
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("the server answered {status} with non-JSON: {text:.200}"))?;
    Ok((status, value))
}

async fn decode(response: reqwest::Response) -> anyhow::Result<Value> {
    let (status, value) = read_json(response).await?;
    if !status.is_success() {
        let message = value
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error message");
        bail!("the server refused the request ({status}): {message}");
    }
    Ok(value)
}
