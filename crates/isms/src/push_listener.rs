//! `isms generator listen`: the generator's side of pushed changes. It serves `POST /push`, takes
//! only pushes signed with the signing key derived from the generator's own key (see
//! `isms_generator::push`), prints each change it has not seen yet as a JSON line (as `isms
//! generator pull` does) and acknowledges every change it is given over the collector's API.
//!
//! Why acknowledge even the changes already seen: the collector sends a change again until it is
//! acknowledged, so a lost acknowledgement must be made good by the next push, while the change
//! itself is applied (printed) once.
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use isms_generator::GeneratorClient;
use isms_generator::push::{PushedChanges, SIGNATURE_HEADER, push_signing_key, verify};
use serde_json::json;

/// Largest push taken (a push carries at most 500 changes).
const MAX_PUSH_BYTES: usize = 8 * 1024 * 1024;

/// Pushes taken but not applied yet; past it a push gets 503 and the collector tries again.
const MAX_QUEUED_PUSHES: usize = 64;

struct Receiver {
    generator: String,
    signing_key: [u8; 32],
    queue: tokio::sync::mpsc::Sender<PushedChanges>,
}

type Answer = (StatusCode, axum::Json<serde_json::Value>);

fn refused(peer: SocketAddr, code: StatusCode, reason: String) -> Answer {
    eprintln!("refused a push from {peer}: {reason}");
    (code, axum::Json(json!({"error": reason})))
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let signature = headers
        .get(SIGNATURE_HEADER)
        .map(|value| value.to_str().unwrap_or(""));
    let now = jiff::Timestamp::now().as_second();
    if let Err(error) = verify(&receiver.signing_key, signature, &body, now) {
        return refused(peer, StatusCode::UNAUTHORIZED, error.to_string());
    }
    let pushed: PushedChanges = match serde_json::from_slice(&body) {
        Ok(pushed) => pushed,
        Err(error) => {
            return refused(
                peer,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the push is not a list of changes: {error}"),
            );
        }
    };
    if pushed.generator != receiver.generator {
        return refused(
            peer,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the push is for generator {:?}; this is {:?}",
                pushed.generator, receiver.generator
            ),
        );
    }
    let count = pushed.changes.len();
    match receiver.queue.try_send(pushed) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({"status": "accepted", "changes": count})),
        ),
        Err(_) => refused(
            peer,
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_QUEUED_PUSHES} pushes are waiting to be applied; try again"),
        ),
    }
}

/// Applies pushed changes in the order they came: prints the new ones, acknowledges all.
async fn apply(
    client: GeneratorClient,
    generator: String,
    fail: Option<String>,
    mut queue: tokio::sync::mpsc::Receiver<PushedChanges>,
) {
    let mut printed: HashMap<String, u64> = HashMap::new();
    while let Some(pushed) = queue.recv().await {
        for change in pushed.changes {
            let newest = printed.entry(change.id.clone()).or_insert(0);
            if change.version > *newest {
                *newest = change.version;
                if let Ok(line) = serde_json::to_string(&change) {
                    let mut output = std::io::stdout().lock();
                    let _ = writeln!(output, "{line}").and_then(|()| output.flush());
                }
            }
            if let Err(error) = client
                .acknowledge(&generator, &change.id, change.version, fail.as_deref())
                .await
            {
                // The collector pushes it again: acknowledged then.
                eprintln!(
                    "cannot acknowledge instance {} version {}: {error}",
                    change.id, change.version
                );
            }
        }
    }
}

/// Serves pushes for `generator` on `address` until stopped.
pub async fn listen(
    client: GeneratorClient,
    key: &str,
    generator: String,
    address: SocketAddr,
    fail: Option<String>,
) -> anyhow::Result<()> {
    let (sender, queue) = tokio::sync::mpsc::channel(MAX_QUEUED_PUSHES);
    let receiver = Arc::new(Receiver {
        generator: generator.clone(),
        signing_key: push_signing_key(key),
        queue: sender,
    });
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let local = listener.local_addr()?;
    tokio::spawn(apply(client, generator.clone(), fail, queue));
    eprintln!("generator {generator} takes pushed changes at http://{local}/push");
    let app = Router::new()
        .route("/push", post(receive))
        .layer(DefaultBodyLimit::max(MAX_PUSH_BYTES))
        .with_state(receiver);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .context("the push listener stopped")
}
