//! Detection in `isms serve`: the engine of `isms_detect` following the store.
//!
//! The engine reads what the store committed, in commit order ([`Store::events_after`], woken by
//! [`Store::committed_seq`]), rather than being handed events by each source: every source's events
//! are seen (HTTP, syslog, AMQP, files, later ones), once, and only once they are durable. Detections
//! are stored as events (category `alert`, origin endpoint `detect`) and are not read back from the
//! store: the engine already fed them to the rules itself (chains).
//!
//! What survives a restart: the engine's state and the seq it has processed through go to
//! `<data_dir>/detect-state.json` every [`SNAPSHOT_INTERVAL`] and when the server stops; at start the
//! engine takes them up and goes on from that seq, so events stored while it was down are still
//! seen. After a crash the events since the last snapshot are processed again (their detections
//! may be stored twice; none is lost). At the very first start it begins with what is stored next,
//! not with the whole history.
//!
//! Rules come from the built-in pack, the rules directory and lists from the lists directory; both
//! directories are looked at every [`RELOAD_INTERVAL`] and reloaded when a file changed (rules whose
//! kind, match and parameters did not change keep their state). Values that rules add to lists are
//! appended to the list's file, so they last and show where operators keep their lists.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use isms_config::Config;
use isms_detect::{Detection, Engine, EngineOptions, Lists, LoadedRules, RuleError};
use isms_event::Event;
use isms_store::{Store, StoredEvent};
use serde_json::{Map, Value};

/// How often the engine's state is saved.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(30);

/// How often the rules and lists directories are looked at.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Events read from the store at once.
const READ_BATCH: usize = 2048;

/// The engine and where its rules come from, shared with the API.
pub struct DetectService {
    engine: Mutex<Engine>,
    rules_dir: PathBuf,
    lists_dir: PathBuf,
    builtin: bool,
    state_path: PathBuf,
    /// The seq processed through, saved with the state.
    processed_seq: Mutex<i64>,
    /// What the last load of the rules could not use.
    rule_errors: Mutex<Vec<RuleError>>,
    rules_fingerprint: Mutex<Vec<(PathBuf, SystemTime, u64)>>,
    lists_fingerprint: Mutex<Vec<(PathBuf, SystemTime, u64)>>,
}

/// Why detection could not start.
#[derive(Debug, thiserror::Error)]
pub enum DetectStartError {
    /// The rules or lists directory cannot be made.
    #[error("cannot create or read {path}: {source}")]
    Directory {
        /// The directory.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
}

impl DetectService {
    /// The rules and lists as the directories and the pack give them now.
    fn load(&self) -> (LoadedRules, Lists) {
        let mut loaded = if self.builtin {
            isms_detect::builtin::builtin_rules()
        } else {
            LoadedRules::default()
        };
        match isms_detect::load_directory(&self.rules_dir) {
            Ok(from_directory) => {
                loaded.files += from_directory.files;
                loaded.errors.extend(from_directory.errors);
                for rule in from_directory.rules {
                    isms_detect::rule::add_unique(&mut loaded, rule);
                }
            }
            Err(error) => {
                tracing::error!(directory = %self.rules_dir.display(), %error, "rules directory not readable");
            }
        }
        let mut lists = Lists::default();
        match lists.load_directory(&self.lists_dir) {
            Ok(problems) => {
                for problem in problems {
                    tracing::warn!(%problem, "list not loaded");
                }
            }
            Err(error) => {
                tracing::error!(directory = %self.lists_dir.display(), %error, "lists directory not readable");
            }
        }
        (loaded, lists)
    }

    fn report_load(loaded: &LoadedRules) {
        tracing::info!(
            rules = loaded.rules.len(),
            files = loaded.files,
            not_loaded = loaded.errors.len(),
            "detection rules loaded"
        );
        for error in &loaded.errors {
            tracing::warn!(%error, "detection rule not loaded");
        }
    }

    /// Reloads rules and lists if a file of their directories changed since the last look.
    fn reload_if_changed(&self) {
        let rules_now = directory_fingerprint(&self.rules_dir);
        let lists_now = directory_fingerprint(&self.lists_dir);
        let rules_changed = *self.rules_fingerprint.lock().expect("not poisoned") != rules_now;
        let lists_changed = *self.lists_fingerprint.lock().expect("not poisoned") != lists_now;
        if !rules_changed && !lists_changed {
            return;
        }
        let (loaded, lists) = self.load();
        let mut engine = self.engine.lock().expect("not poisoned");
        if rules_changed {
            Self::report_load(&loaded);
            *self.rule_errors.lock().expect("not poisoned") = loaded.errors;
            engine.set_rules(loaded.rules);
        }
        if lists_changed {
            tracing::info!(lists = lists.names().count(), "detection lists reloaded");
            engine.set_lists(lists);
        }
        *self.rules_fingerprint.lock().expect("not poisoned") = rules_now;
        *self.lists_fingerprint.lock().expect("not poisoned") = lists_now;
    }

    /// Runs `read` with the engine locked (for the API).
    pub fn with_engine<T>(&self, read: impl FnOnce(&Engine) -> T) -> T {
        read(&self.engine.lock().expect("not poisoned"))
    }

    /// The rules that could not be loaded at the last (re)load.
    pub fn rule_errors(&self) -> Vec<RuleError> {
        self.rule_errors.lock().expect("not poisoned").clone()
    }

    /// Saves the engine's state and the seq processed through (temporary file, fsync, rename).
    pub fn save_state(&self) -> std::io::Result<()> {
        let processed = *self.processed_seq.lock().expect("not poisoned");
        let temporary = self.state_path.with_extension("json.tmp");
        {
            let file = std::fs::File::create(&temporary)?;
            let mut writer = std::io::BufWriter::new(file);
            use std::io::Write;
            write!(writer, "{{\"processed_seq\":{processed},\"engine\":")?;
            self.engine
                .lock()
                .expect("not poisoned")
                .write_snapshot(&mut writer)
                .map_err(std::io::Error::other)?;
            writer.write_all(b"}")?;
            let file = writer.into_inner().map_err(|error| error.into_error())?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, &self.state_path)?;
        Ok(())
    }

    /// Takes up the saved state; returns the seq it was processed through, if there was one.
    fn restore_state(&self) -> Option<i64> {
        let text = match std::fs::read(&self.state_path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::error!(path = %self.state_path.display(), %error, "detection state not readable; starting afresh");
                return None;
            }
        };
        #[derive(serde::Deserialize)]
        struct Saved {
            processed_seq: i64,
            engine: Value,
        }
        let saved: Saved = match serde_json::from_slice(&text) {
            Ok(saved) => saved,
            Err(error) => {
                tracing::error!(path = %self.state_path.display(), %error, "detection state damaged; starting afresh");
                return None;
            }
        };
        let mut engine = self.engine.lock().expect("not poisoned");
        let engine_text = saved.engine.to_string();
        match engine.restore(engine_text.as_bytes()) {
            Ok(rules) => {
                tracing::info!(
                    rules,
                    processed_seq = saved.processed_seq,
                    "detection state restored"
                );
                Some(saved.processed_seq)
            }
            Err(error) => {
                tracing::error!(path = %self.state_path.display(), %error, "detection state damaged; starting afresh");
                None
            }
        }
    }
}

/// Starts detection over `store` as the configuration says; `None` when `detect.enabled` is off.
pub async fn start_detection(
    config: &Config,
    store: Arc<dyn Store>,
) -> Result<Option<Arc<DetectService>>, DetectStartError> {
    if !config.detect.enabled.is_on() {
        return Ok(None);
    }
    let directory = |configured: &str, default: &str| -> Result<PathBuf, DetectStartError> {
        let path = if configured.is_empty() {
            config.data_dir.join(default)
        } else {
            PathBuf::from(configured)
        };
        std::fs::create_dir_all(&path).map_err(|source| DetectStartError::Directory {
            path: path.display().to_string(),
            source,
        })?;
        Ok(path)
    };
    let rules_dir = directory(&config.detect.rules_dir, "rules")?;
    let lists_dir = directory(&config.detect.lists_dir, "lists")?;
    let service = Arc::new(DetectService {
        engine: Mutex::new(Engine::new(
            Vec::new(),
            Lists::default(),
            EngineOptions {
                allowed_lateness_micros: (config.detect.allowed_lateness_seconds as i64)
                    .saturating_mul(1_000_000),
                max_chain_depth: config.detect.max_chain_depth,
            },
        )),
        rules_fingerprint: Mutex::new(directory_fingerprint(&rules_dir)),
        lists_fingerprint: Mutex::new(directory_fingerprint(&lists_dir)),
        rules_dir,
        lists_dir,
        builtin: config.detect.builtin_rules.is_on(),
        state_path: config.data_dir.join("detect-state.json"),
        processed_seq: Mutex::new(0),
        rule_errors: Mutex::new(Vec::new()),
    });
    let (loaded, lists) = service.load();
    DetectService::report_load(&loaded);
    {
        let mut engine = service.engine.lock().expect("not poisoned");
        engine.set_rules(loaded.rules);
        engine.set_lists(lists);
    }
    *service.rule_errors.lock().expect("not poisoned") = loaded.errors;
    let start = match service.restore_state() {
        Some(processed) => processed,
        // First start: what is stored from now on.
        None => *store.committed_seq().borrow(),
    };
    *service.processed_seq.lock().expect("not poisoned") = start;
    // Saved at once, so that a crash before the first snapshot still goes on from here, not from
    // whatever is stored at the next start.
    let saving = service.clone();
    match tokio::task::spawn_blocking(move || saving.save_state()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "detection state not saved"),
        Err(error) => tracing::error!(%error, "detection state not saved"),
    }
    tokio::spawn(follow_store(service.clone(), store));
    Ok(Some(service))
}

/// The detection loop: reads what was committed, runs it through the engine, stores detections;
/// every second the clock timers; every [`RELOAD_INTERVAL`] a look at the directories; every
/// [`SNAPSHOT_INTERVAL`] a snapshot.
async fn follow_store(service: Arc<DetectService>, store: Arc<dyn Store>) {
    let mut committed = store.committed_seq();
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_reload = tokio::time::Instant::now();
    let mut last_snapshot = tokio::time::Instant::now();
    // Detections not stored yet (the store failed): tried again before anything else.
    let mut unstored: Vec<Detection> = Vec::new();
    loop {
        tokio::select! {
            changed = committed.changed() => {
                if changed.is_err() {
                    tracing::debug!("store closed; detection stops");
                    return;
                }
            }
            _ = clock.tick() => {
                let now = jiff::Timestamp::now().as_microsecond();
                let detections = service.engine.lock().expect("not poisoned").tick(now);
                unstored.extend(detections);
                if last_reload.elapsed() >= RELOAD_INTERVAL {
                    last_reload = tokio::time::Instant::now();
                    let reloading = service.clone();
                    if let Err(error) = tokio::task::spawn_blocking(move || reloading.reload_if_changed()).await {
                        tracing::error!(%error, "detection reload failed");
                    }
                }
                if last_snapshot.elapsed() >= SNAPSHOT_INTERVAL {
                    last_snapshot = tokio::time::Instant::now();
                    let saving = service.clone();
                    match tokio::task::spawn_blocking(move || saving.save_state()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => tracing::error!(%error, "detection state not saved"),
                        Err(error) => tracing::error!(%error, "detection state not saved"),
                    }
                }
            }
        }
        loop {
            if !unstored.is_empty() {
                store_detections(&service, store.as_ref(), &mut unstored).await;
                if !unstored.is_empty() {
                    // The store refuses: wait for the next wake-up rather than spin.
                    break;
                }
            }
            let after = *service.processed_seq.lock().expect("not poisoned");
            let batch = match store.events_after(after, READ_BATCH).await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(%error, after, "detection cannot read the store");
                    break;
                }
            };
            let Some(last) = batch.last().map(|stored| stored.seq) else {
                break;
            };
            let detections = process_batch(&service, batch);
            *service.processed_seq.lock().expect("not poisoned") = last;
            unstored.extend(detections);
        }
    }
}

/// Runs stored events through the engine (the detections' own events are skipped: the engine fed
/// them back itself).
fn process_batch(service: &DetectService, batch: Vec<StoredEvent>) -> Vec<Detection> {
    let now = jiff::Timestamp::now().as_microsecond();
    let mut detections = Vec::new();
    let mut engine = service.engine.lock().expect("not poisoned");
    for stored in batch {
        if is_detection(&stored.document) {
            continue;
        }
        let Some(event) = event_of(stored) else {
            continue;
        };
        let lag = (now - event.receivedtimestamp_micros).max(0) as f64 / 1e6;
        metrics::histogram!("isms_detect_lag_seconds").record(lag);
        detections.extend(engine.process(&event));
    }
    let additions = engine.take_list_additions();
    drop(engine);
    for (list, value) in additions {
        append_to_list_file(&service.lists_dir, &list, &value);
    }
    detections
}

/// Stores detections as events; keeps those the store refused in `unstored`.
async fn store_detections(
    service: &DetectService,
    store: &dyn Store,
    unstored: &mut Vec<Detection>,
) {
    let events: Vec<Event> = unstored
        .iter()
        .filter_map(|detection| detection.event.clone())
        .collect();
    let count = events.len();
    match store.append(events).await {
        Ok(()) => {
            metrics::counter!("isms_detect_stored_total").increment(count as u64);
            unstored.clear();
        }
        Err(error) => {
            tracing::error!(%error, detections = count, "detections not stored yet; will try again");
        }
    }
    let _ = service;
}

fn is_detection(document: &Map<String, Value>) -> bool {
    document
        .get("origin")
        .and_then(|origin| origin.get("endpoint"))
        .and_then(Value::as_str)
        == Some("detect")
}

/// A stored document as the engine's event.
fn event_of(stored: StoredEvent) -> Option<Event> {
    let id = stored.document.get("id")?.as_str()?.to_owned();
    let time = |field: &str| {
        stored
            .document
            .get(field)
            .and_then(|value| isms_event::parse_time_value(value).ok())
            .map(isms_event::micros_of)
    };
    let utctimestamp_micros = time("utctimestamp")?;
    let receivedtimestamp_micros = time("receivedtimestamp").unwrap_or(utctimestamp_micros);
    Some(Event {
        id,
        utctimestamp_micros,
        receivedtimestamp_micros,
        document: stored.document,
    })
}

/// Appends a value a rule added to a list to the list's file (created if need be).
fn append_to_list_file(directory: &Path, list: &str, value: &str) {
    // A list name from a rule file: keep it a plain file name.
    if list.is_empty()
        || !list
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || list.starts_with('.')
    {
        tracing::warn!(%list, "list name is not a plain file name; the value is kept in memory only");
        return;
    }
    let path = directory.join(format!("{list}.txt"));
    let line = format!("{}\n", value.replace(['\n', '\r', '#'], " "));
    let result = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| {
            use std::io::Write;
            file.write_all(line.as_bytes())
        });
    if let Err(error) = result {
        tracing::error!(path = %path.display(), %error, "list value not written");
    }
}

/// The files of a directory (recursively) with their modification times and sizes, to see whether
/// anything changed.
fn directory_fingerprint(directory: &Path) -> Vec<(PathBuf, SystemTime, u64)> {
    let mut files = Vec::new();
    fn walk(directory: &Path, files: &mut Vec<(PathBuf, SystemTime, u64)>, depth: usize) {
        if depth > 16 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(directory) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.is_dir() {
                walk(&entry.path(), files, depth + 1);
            } else {
                files.push((
                    entry.path(),
                    metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    metadata.len(),
                ));
            }
        }
    }
    walk(directory, &mut files, 0);
    files.sort();
    files
}
