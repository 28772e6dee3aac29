//! Push delivery: the pending changes of a generator registered with a `push_url` are POSTed there,
//! signed, as soon as they are made, instead of waiting for the generator's next pull.
//!
//! Why both push and pull: a pull needs no open port on the generator's host, and stays the way a
//! generator catches up after being down; a push reaches a generator that does not hold a pull
//! open (thousands of idle generators need not hold thousands of connections). A change stays
//! pending until the generator acknowledges it over the API, so a push is only a faster way to
//! deliver it: one that fails is tried again after 1, 2, 4 ... 60 seconds, one that was taken but
//! not acknowledged is sent again after [`RESEND_UNACKNOWLEDGED_AFTER`], and pulls keep working
//! throughout.
//!
//! One task per pushed generator follows its changes (the same signal that wakes its pulls). The
//! set of tasks follows the registry: [`GeneratorService::refresh_pushes`] runs at start and after
//! every change to a generator. A push's signature is made with the signing key the registry
//! keeps for the generator's current key (see `isms_generator::push`); a generator without a key
//! (revoked) gets no pushes.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use isms_generator::push::{MAX_CHANGES_PER_PUSH, PushedChanges, SIGNATURE_HEADER, sign};
use isms_registry::{Generator, Instance, RegistryError};

use crate::generators::{AuditEntry, GeneratorService, Outcome};

/// After a push was taken, how long the generator has to acknowledge before it is sent again.
pub const RESEND_UNACKNOWLEDGED_AFTER: Duration = Duration::from_secs(60);

/// Longest wait between tries of a failing push.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// How the running push tasks are kept: per generator, what its task was started with, and the
/// task. The tasks hold the service, so they last as long as the process.
#[derive(Default)]
pub(crate) struct PushTasks {
    /// Held from reading the generators to starting and stopping tasks: two refreshes at once
    /// would otherwise let the one that read first undo the other.
    refreshing: tokio::sync::Mutex<()>,
    running: Mutex<HashMap<String, (PushTarget, tokio::task::JoinHandle<()>)>>,
    http: OnceLock<Result<reqwest::Client, String>>,
}

/// Where and how one generator's changes are pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PushTarget {
    url: String,
    signing_key: [u8; 32],
}

impl PushTarget {
    fn of(generator: &Generator) -> Option<PushTarget> {
        let url = generator.push_url.clone()?;
        let hex = generator.push_signing_key.as_deref()?;
        let signing_key = *blake3::Hash::from_hex(hex).ok()?.as_bytes();
        Some(PushTarget { url, signing_key })
    }
}

/// The changes a generator has not acknowledged, oldest first, at most one push's worth.
fn unacknowledged(mut instances: Vec<Instance>) -> Vec<Instance> {
    instances.retain(|instance| {
        instance
            .acknowledged_version
            .is_none_or(|acknowledged| acknowledged < instance.version)
    });
    instances.sort_by_key(|instance| instance.version);
    instances.truncate(MAX_CHANGES_PER_PUSH);
    instances
}

impl GeneratorService {
    /// Starts a push task for each live generator with a push URL and a key, and stops the tasks
    /// of the others (deleted, revoked, URL removed); a generator whose URL or key changed gets a
    /// new task. Does nothing when pushes are turned off.
    pub async fn refresh_pushes(self: &Arc<Self>) {
        if !self.push_enabled {
            return;
        }
        let _refreshing = self.push_tasks.refreshing.lock().await;
        let generators = match self.registry.generators().await {
            Ok(generators) => generators,
            Err(error) => {
                tracing::error!(%error, "cannot read the generators to push to");
                return;
            }
        };
        let wanted: HashMap<String, PushTarget> = generators
            .iter()
            .filter_map(|generator| Some((generator.name.clone(), PushTarget::of(generator)?)))
            .collect();
        let mut running = self
            .push_tasks
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        running.retain(|name, (target, task)| {
            let keep = wanted.get(name) == Some(target) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (name, target) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            let task = tokio::spawn(push_loop(self.clone(), name.clone(), target.clone()));
            running.insert(name, (target, task));
        }
    }

    /// The HTTP client pushes go through: no redirects (a push goes where it was registered to),
    /// the configured timeout. Made at the first push, when the process has chosen its TLS
    /// provider.
    fn push_client(&self) -> Result<reqwest::Client, String> {
        self.push_tasks
            .http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(self.push_timeout)
                    .build()
                    .map_err(|error| format!("cannot make the HTTP client for pushes: {error}"))
            })
            .clone()
    }
}

/// Follows one generator's changes and pushes the unacknowledged ones, until the generator is
/// gone (or the task is replaced).
async fn push_loop(service: Arc<GeneratorService>, generator: String, target: PushTarget) {
    let mut signal = service.watch_instances(&generator);
    // The newest version a push was taken with, and when; what failed in a row.
    let mut pushed_through = 0_u64;
    let mut pushed_at: Option<tokio::time::Instant> = None;
    let mut failures = 0_u32;
    loop {
        signal.borrow_and_update();
        let pending = match service.registry.changes(&generator, 0).await {
            Ok(instances) => unacknowledged(instances),
            Err(RegistryError::NotFound { .. }) => return,
            Err(error) => {
                tracing::error!(%error, generator, "cannot read the changes to push");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        let newest = pending.last().map_or(0, |change| change.version);
        let resend_due = pushed_at.is_some_and(|at| at.elapsed() >= RESEND_UNACKNOWLEDGED_AFTER);
        if !pending.is_empty() && (newest > pushed_through || resend_due || failures > 0) {
            match push(&service, &generator, &target, &pending).await {
                Ok(()) => {
                    let delivered: Vec<String> = pending
                        .iter()
                        .map(|change| format!("{}@{}", change.id, change.version))
                        .collect();
                    service
                        .audit(push_entry(
                            &generator,
                            format!("instances {}", delivered.join(" ")),
                            Outcome::Ok,
                            None,
                        ))
                        .await;
                    pushed_through = newest;
                    pushed_at = Some(tokio::time::Instant::now());
                    failures = 0;
                }
                Err(reason) => {
                    failures = failures.saturating_add(1);
                    // The first failure and every tenth after it are logged, not each retry.
                    if failures % 10 == 1 {
                        service
                            .audit(push_entry(
                                &generator,
                                format!("url {}", target.url),
                                Outcome::Failed,
                                Some(format!("{reason} (attempt {failures})")),
                            ))
                            .await;
                    }
                    // Not woken by new changes meanwhile: the next try sends them too.
                    let delay = Duration::from_secs(1 << (failures.min(7) - 1));
                    tokio::time::sleep(delay.min(MAX_RETRY_DELAY)).await;
                    continue;
                }
            }
        }
        if pending.is_empty() {
            if signal.changed().await.is_err() {
                return;
            }
        } else {
            // Taken but not acknowledged yet: sent again when the acknowledgement is overdue,
            // or at once with a new change.
            let overdue_in = pushed_at.map_or(RESEND_UNACKNOWLEDGED_AFTER, |at| {
                RESEND_UNACKNOWLEDGED_AFTER.saturating_sub(at.elapsed())
            });
            let _ = tokio::time::timeout(overdue_in, signal.changed()).await;
        }
    }
}

fn push_entry(
    generator: &str,
    object: String,
    outcome: Outcome,
    reason: Option<String>,
) -> AuditEntry {
    AuditEntry {
        action: "push_changes".to_owned(),
        generator: Some(generator.to_owned()),
        object: Some(object),
        outcome,
        reason,
        peer: None,
        key_name: None,
    }
}

/// One signed POST of `pending` to the generator; `Err` says why it was not taken.
async fn push(
    service: &GeneratorService,
    generator: &str,
    target: &PushTarget,
    pending: &[Instance],
) -> Result<(), String> {
    let http = service.push_client()?;
    let changes = pending
        .iter()
        .map(|instance| isms_generator::InstanceChange {
            id: instance.id.clone(),
            class: instance.class.clone(),
            arguments: instance.arguments.clone(),
            version: instance.version,
            deleted: instance.deleted,
            profile_requested: instance.profile_requested,
        })
        .collect();
    let body = serde_json::to_vec(&PushedChanges {
        generator: generator.to_owned(),
        changes,
    })
    .map_err(|error| format!("cannot write the push: {error}"))?;
    let signature = sign(
        &target.signing_key,
        jiff::Timestamp::now().as_second(),
        &body,
    );
    let response = http
        .post(&target.url)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .map_err(|error| format!("cannot push to {}: {error}", target.url))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{} answered HTTP {status}", target.url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, version: u64, acknowledged: Option<u64>) -> Instance {
        Instance {
            row: 0,
            id: id.to_owned(),
            generator: "HIDS".to_owned(),
            class: "TCP_MISSING".to_owned(),
            arguments: serde_json::Map::new(),
            version,
            state: isms_registry::InstanceState::Pending,
            acknowledged_version: acknowledged,
            error: None,
            profile_requested: false,
            profile: None,
            deleted: false,
            created_micros: 0,
            updated_micros: 0,
        }
    }

    #[test]
    fn only_changes_not_acknowledged_are_pushed_oldest_first() {
        let pending = unacknowledged(vec![
            instance("b", 4, Some(2)),
            instance("a", 3, Some(3)),
            instance("c", 2, None),
        ]);
        let versions: Vec<(String, u64)> = pending
            .iter()
            .map(|change| (change.id.clone(), change.version))
            .collect();
        assert_eq!(versions, [("c".to_owned(), 2), ("b".to_owned(), 4)]);
        let many = (1..=(MAX_CHANGES_PER_PUSH as u64 + 10))
            .map(|version| instance(&version.to_string(), version, None))
            .collect();
        let first = unacknowledged(many);
        assert_eq!(first.len(), MAX_CHANGES_PER_PUSH);
        assert_eq!(first[0].version, 1);
    }
}
