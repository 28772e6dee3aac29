//! Alert generators at the collector: which generator a key belongs to, where it may call from,
//! how many wrong keys an address may try, and the activity log (seed 000's client.log and
//! server.log).
//!
//! The activity log is kept as events (category `audit`, source `isms-registry`) in the event
//! store, not in a table of its own: they are durable like any event, searched with the same
//! predicates (`/api/audit` is a search), and seen by the detection engine, so a rule can alert on
//! repeated bad keys or on a generator deleted out of hours.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use isms_registry::{Generator, Registry, RegistryError};
use isms_store::Store;
use serde_json::{Value, json};

/// The window failed key checks are counted in.
pub const KEY_FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Longest a generator's pull for changes waits.
pub const MAX_PULL_WAIT: Duration = Duration::from_secs(30);

/// Most addresses whose failures are remembered (past it, windows that ended are forgotten).
const MAX_FAILING_ADDRESSES: usize = 10_000;

/// How a logged exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused: the caller's request or credentials were not acceptable.
    Refused,
    /// The collector failed.
    Failed,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }

    /// The seed's log levels: INFO for what was done, WARNING for what was refused, ERROR for
    /// what failed.
    fn level(self) -> &'static str {
        match self {
            Outcome::Ok => "INFO",
            Outcome::Refused => "WARNING",
            Outcome::Failed => "ERROR",
        }
    }
}

/// One entry of the activity log.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// What was asked: `register_generator`, `verify_class`, `authenticate`, ...
    pub action: String,
    /// The generator concerned, if any.
    pub generator: Option<String>,
    /// The record acted on (`group network`, `class TCP_MISSING`).
    pub object: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it was refused or failed.
    pub reason: Option<String>,
    /// Who called: its address.
    pub peer: Option<IpAddr>,
    /// The name of the key it presented (never the key).
    pub key_name: Option<String>,
}

/// The collector's side of the generators: the registry, plus what authentication needs fast.
pub struct GeneratorService {
    /// The registry itself.
    pub registry: Registry,
    store: Arc<dyn Store>,
    /// Failed key checks per address: when the window started and how many.
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// Per generator waited on, bumped at every change of its instances: wakes its pulls.
    instance_changes: Mutex<HashMap<String, tokio::sync::watch::Sender<u64>>>,
    /// Longest a generator's pull waits for a change (below the HTTP request timeout).
    max_wait: Duration,
    /// Per generator: its last call (µs since the epoch), and when its last contact event was
    /// written.
    contacts: Mutex<HashMap<String, Contact>>,
    /// Failed key checks one address may make per window before it is refused without a check
    /// (`generators.max_key_failures_per_minute`).
    max_key_failures: u32,
    /// Whether changes are pushed to generators with a push URL (`generators.push`).
    pub(crate) push_enabled: bool,
    /// Time allowed for one push (`generators.push_timeout_seconds`).
    pub(crate) push_timeout: Duration,
    pub(crate) push_tasks: crate::push::PushTasks,
}

/// What is known of a generator's calls.
#[derive(Debug, Clone, Copy)]
struct Contact {
    last_micros: i64,
    /// When its contact event was last written.
    written: Option<Instant>,
    /// When its last contact was last written down in the registry.
    noted: Option<Instant>,
}

/// How often a generator's last contact is written down in the registry (so it outlives a restart).
const NOTE_CONTACT_EVERY: Duration = Duration::from_secs(60);

impl GeneratorService {
    /// The service over `store`'s control records and events; a pull for changes waits at most
    /// 30 s, and at least a second less than `request_timeout` (which would cut it off).
    pub fn new(
        store: Arc<dyn Store>,
        request_timeout: Duration,
        config: &isms_config::GeneratorsConfig,
    ) -> GeneratorService {
        GeneratorService {
            registry: Registry::new(store.clone()),
            store,
            failures: Mutex::new(HashMap::new()),
            instance_changes: Mutex::new(HashMap::new()),
            max_wait: MAX_PULL_WAIT.min(request_timeout.saturating_sub(Duration::from_secs(1))),
            contacts: Mutex::new(HashMap::new()),
            max_key_failures: config.max_key_failures_per_minute.max(1),
            push_enabled: config.push.is_on(),
            push_timeout: Duration::from_secs(config.push_timeout_seconds.max(1)),
            push_tasks: crate::push::PushTasks::default(),
        }
    }

    /// Notes a call of `generator`. Its last contact is written down in the registry at most
    /// every minute. For one with an expected interval, a contact event is written at most every
    /// half interval (and at most every minute): what the built-in rule `isms-generator-silent`
    /// (absence, the generator's own interval) follows.
    pub fn record_contact(self: &Arc<Self>, generator: &Generator) {
        let now = jiff::Timestamp::now().as_microsecond();
        let (event_due, note_due) = {
            let mut contacts = self
                .contacts
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let contact = contacts.entry(generator.name.clone()).or_insert(Contact {
                last_micros: now,
                written: None,
                noted: None,
            });
            contact.last_micros = now;
            let event_due = generator.expected_interval_seconds.is_some_and(|interval| {
                let every = Duration::from_secs((interval / 2).clamp(1, 60));
                contact
                    .written
                    .is_none_or(|written| written.elapsed() >= every)
            });
            if event_due {
                contact.written = Some(Instant::now());
            }
            let note_due = contact
                .noted
                .is_none_or(|noted| noted.elapsed() >= NOTE_CONTACT_EVERY);
            if note_due {
                contact.noted = Some(Instant::now());
            }
            (event_due, note_due)
        };
        if note_due {
            let service = self.clone();
            let name = generator.name.clone();
            tokio::spawn(async move {
                if let Err(error) = service.registry.note_contact(&name, now).await {
                    tracing::warn!(%error, generator = name, "last contact not written down");
                }
            });
        }
        if !event_due {
            return;
        }
        let service = self.clone();
        let generator = generator.clone();
        tokio::spawn(async move {
            let raw = json!({
                "category": "generator",
                "source": "isms-registry",
                "severity": "INFO",
                "summary": format!("alert generator {} called in", generator.name),
                "details": {
                    "action": "contact",
                    "generator": generator.name,
                    "expected_interval_seconds": generator.expected_interval_seconds,
                },
            });
            let origin = isms_event::Origin {
                peer: None,
                endpoint: "registry".to_owned(),
                key_name: None,
            };
            service.store_event(raw, &origin, "generator contact").await;
        });
    }

    /// When `generator` last called (µs since the epoch): seen by this collector, or as written
    /// down in the registry (before a restart, or by another collector).
    pub fn last_contact(&self, generator: &Generator) -> Option<i64> {
        let seen = self
            .contacts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&generator.name)
            .map(|contact| contact.last_micros);
        seen.max(generator.last_contact_micros)
    }

    /// Wakes the pulls of `generator` waiting for changes (after one of its instances changed).
    pub fn instances_changed(&self, generator: &str) {
        if let Some(sender) = self
            .instance_changes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(generator)
        {
            sender.send_modify(|count| *count += 1);
        }
    }

    /// A receiver woken at every change of `generator`'s instances (one kept per generator
    /// name: ask only for registered ones).
    pub fn watch_instances(&self, generator: &str) -> tokio::sync::watch::Receiver<u64> {
        self.instance_changes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(generator.to_owned())
            .or_insert_with(|| tokio::sync::watch::Sender::new(0))
            .subscribe()
    }

    /// The longest a pull for changes may wait.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// The live generator whose current key has this public id (from the registry's cache of
    /// generators, which the registry's writes keep current: a rotated or revoked key stops
    /// acting for its generator at once).
    pub async fn generator_of_key(&self, key_id: &str) -> Result<Option<Generator>, RegistryError> {
        self.registry.generator_with_key(key_id).await
    }

    /// When `address` has used up its failed key checks: how long until it may try again.
    pub fn refused_for(&self, address: IpAddr) -> Option<Duration> {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (started, count) = failures.get(&address.to_canonical())?;
        let elapsed = started.elapsed();
        (*count >= self.max_key_failures && elapsed < KEY_FAILURE_WINDOW)
            .then(|| KEY_FAILURE_WINDOW - elapsed)
    }

    /// Counts a failed key check from `address`; true when this one used up its allowance.
    pub fn count_failure(&self, address: IpAddr) -> bool {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if failures.len() >= MAX_FAILING_ADDRESSES {
            failures.retain(|_, (started, _)| started.elapsed() < KEY_FAILURE_WINDOW);
            if failures.len() >= MAX_FAILING_ADDRESSES {
                failures.clear();
            }
        }
        let entry = failures
            .entry(address.to_canonical())
            .or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= KEY_FAILURE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        entry.1 == self.max_key_failures
    }

    /// Writes an entry of the activity log: a structured log line, and an event in the store
    /// (durable when this returns; a store failure is logged, not raised).
    pub async fn audit(&self, entry: AuditEntry) {
        let outcome = entry.outcome;
        match outcome {
            Outcome::Ok => tracing::info!(
                action = entry.action,
                generator = entry.generator.as_deref().unwrap_or(""),
                object = entry.object.as_deref().unwrap_or(""),
                peer = entry.peer.map(|peer| peer.to_string()).unwrap_or_default(),
                "registry operation done"
            ),
            Outcome::Refused | Outcome::Failed => tracing::warn!(
                action = entry.action,
                outcome = outcome.name(),
                generator = entry.generator.as_deref().unwrap_or(""),
                object = entry.object.as_deref().unwrap_or(""),
                reason = entry.reason.as_deref().unwrap_or(""),
                peer = entry.peer.map(|peer| peer.to_string()).unwrap_or_default(),
                "registry operation not done"
            ),
        }
        let (raw, origin) = audit_event(&entry);
        self.store_event(raw, &origin, "activity-log entry").await;
    }

    /// Normalizes and stores an event the registry writes itself (durable when this returns); a
    /// failure is logged, not raised: the operation it records has happened.
    async fn store_event(&self, raw: Value, origin: &isms_event::Origin, what: &str) {
        match isms_event::normalize(raw, origin, jiff::Timestamp::now()) {
            Ok(event) => {
                if let Err(error) = self.store.append(vec![event]).await {
                    tracing::error!(%error, what, "registry event not stored");
                }
            }
            Err(error) => tracing::error!(%error, what, "registry event cannot be made an event"),
        }
    }
}

/// Most characters kept of an activity-log field that comes from a request (a name or path not
/// checked yet, a reason quoting them); the rest is cut, so a refused request cannot make a large
/// event.
const MAX_AUDIT_FIELD_CHARS: usize = 512;

fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_AUDIT_FIELD_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// An activity-log entry as a MozDef event, and its origin.
fn audit_event(entry: &AuditEntry) -> (Value, isms_event::Origin) {
    let generator = entry.generator.as_deref().map(bounded);
    let object = entry.object.as_deref().map(bounded);
    let reason = entry.reason.as_deref().map(bounded);
    let mut summary = format!("{} {}", entry.action, entry.outcome.name());
    if let Some(generator) = &generator {
        summary.push_str(&format!(" generator {generator}"));
    }
    if let Some(object) = &object {
        summary.push_str(&format!(" {object}"));
    }
    if let Some(reason) = &reason {
        summary.push_str(&format!(": {reason}"));
    }
    let mut details = json!({
        "action": entry.action,
        "outcome": entry.outcome.name(),
        "level": entry.outcome.level(),
    });
    let details_map = details.as_object_mut().expect("an object");
    for (name, value) in [
        ("generator", generator),
        ("object", object),
        ("reason", reason),
        ("sourceipaddress", entry.peer.map(|peer| peer.to_string())),
        ("key", entry.key_name.clone()),
    ] {
        if let Some(value) = value {
            details_map.insert(name.to_owned(), Value::String(value));
        }
    }
    let raw = json!({
        "category": "audit",
        "source": "isms-registry",
        "severity": entry.outcome.level(),
        "summary": summary,
        "details": details,
    });
    let origin = isms_event::Origin {
        peer: entry.peer.map(|peer| peer.to_string()),
        endpoint: "audit".to_owned(),
        key_name: entry.key_name.clone(),
    };
    (raw, origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_log_fields_from_requests_are_bounded() {
        let long = "é".repeat(MAX_AUDIT_FIELD_CHARS * 4);
        let (raw, _) = audit_event(&AuditEntry {
            action: "register_group".to_owned(),
            generator: Some(long.clone()),
            object: Some(format!("group {long}")),
            outcome: Outcome::Refused,
            reason: Some(long.clone()),
            peer: None,
            key_name: None,
        });
        for field in ["generator", "object", "reason"] {
            let text = raw["details"][field].as_str().unwrap();
            assert_eq!(text.chars().count(), MAX_AUDIT_FIELD_CHARS + 1, "{field}");
            assert!(text.ends_with('…'), "{field}");
        }
        assert!(raw["summary"].as_str().unwrap().chars().count() < 4 * MAX_AUDIT_FIELD_CHARS);
        assert_eq!(bounded("short"), "short");
    }
}
