//! Detection in `isms serve`: the engine of `isms_detect` following the store.
//!
//! The engine reads what the store committed, in commit order ([`Store::events_after`], woken by
//! [`Store::committed_seq`]), rather than being handed events by each source: every source's events
//! are seen (HTTP, syslog, AMQP, files, later ones), once, and only once they are durable. Detections
//! are stored as events (category `alert`, origin endpoint `detect`) and are not read back from the
//! store: the engine already fed them to the rules itself (chains).
//!
//! What survives a restart: the engine's state and the seq it has processed through go to
//! `<data_dir>/detect-state.json` every `detect.snapshot_interval_seconds` and when the server
//! stops; at start the engine takes them up and goes on from that seq, so events stored while it
//! was down are still seen. After a crash the events since the last snapshot are processed again to rebuild the state;
//! their detections are not stored a second time: whenever detections have been stored, the seq
//! they were raised through goes to `<data_dir>/detect-progress.json` (renamed into place, not
//! fsynced: the store's append already was), and detections of events up to it are dropped while
//! the engine catches up. (Only a crash between a store append and that small write, or a power
//! loss that keeps the older file, can still store some twice; detections of the clock, absence and
//! scheduled rules are not tied to a seq and may repeat after a crash.) At the very first start it
//! begins with what is stored next, not with the whole history. When each scheduled rule runs next
//! is saved with the state too: a run that fell due while the server was down is made up for once,
//! at start (over its look-back from then), like anacron.
//!
//! Rules come from the built-in pack, the rules directory and `<data_dir>/rules-api/` (rules made
//! through the API, one YAML file each); lists from the lists directory. The directories are looked
//! at every [`RELOAD_INTERVAL`] and reloaded when a file changed (rules whose kind, match and
//! parameters did not change keep their state). Parameters and `enabled` changed at run time through
//! the API (seed 002's modifiable detectors) are kept in `<data_dir>/rule-overrides.json` and laid
//! over any rule, built-in ones too, at every load. Values that rules add to lists are appended to the
//! list's file, so they last and show where operators keep their lists.
//!
//! Sigma rules with `|expand` take `%name%` placeholders' values from the lists when they are
//! compiled, so the lists are read before the rules, and when the lists change (a file, the API,
//! values rules added, seen at the next look) and some rule expands a placeholder, the rules are
//! compiled again with them (a rule whose match did not change keeps its state; one refused for a
//! list that did not exist yet loads once it does).
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use isms_config::Config;
use std::collections::BTreeMap;

use isms_detect::{
    Detection, Engine, EngineOptions, Lists, LoadedRules, Rule, RuleDefinition, RuleError,
};
use isms_event::Event;
use isms_store::{Store, StoredEvent};
use serde_json::{Map, Value};

/// How often the rules and lists directories are looked at.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Events read from the store at once.
const READ_BATCH: usize = 2048;

/// The engine and where its rules come from, shared with the API.
pub struct DetectService {
    engine: Mutex<Engine>,
    rules_dir: PathBuf,
    api_rules_dir: PathBuf,
    overrides_path: PathBuf,
    /// One change of rules or lists at a time (API calls and reloads).
    changing: Mutex<()>,
    lists_dir: PathBuf,
    builtin: bool,
    state_path: PathBuf,
    /// How often the state is saved.
    snapshot_interval: Duration,
    /// The seq processed through, saved with the state.
    processed_seq: Mutex<i64>,
    /// Where the seq that every detection was stored through is kept (`detect-progress.json`).
    progress_path: PathBuf,
    /// Events up to this seq had their detections stored before a restart: while the engine
    /// processes them again, their detections are dropped.
    stored_through_before_restart: Mutex<i64>,
    /// What the last load of the rules could not use.
    rule_errors: Mutex<Vec<RuleError>>,
    /// Every rule of the last load, disabled ones too (the engine runs the enabled ones).
    all_rules: Mutex<Vec<Rule>>,
    rules_fingerprint: Mutex<Vec<(PathBuf, SystemTime, u64)>>,
    lists_fingerprint: Mutex<Vec<(PathBuf, SystemTime, u64)>>,
    /// The `%name%` placeholders of the loaded Sigma rules' `|expand` values: when not empty, a
    /// change of the lists compiles the rules again.
    expand_placeholders: Mutex<std::collections::BTreeSet<String>>,
    /// When each scheduled rule runs next (microseconds), by rule id.
    next_runs: Mutex<BTreeMap<String, i64>>,
    /// Asks the detection loop to finish, store, save and stop; it answers on `stopped`.
    stop: tokio::sync::Notify,
    stopped: tokio::sync::Notify,
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
    /// The rules and lists as the directories and the pack give them now (the lists first: Sigma
    /// `|expand` placeholders are filled from them).
    fn load(&self) -> (LoadedRules, Lists) {
        let lists = Arc::new(self.load_lists());
        let mut loaded = if self.builtin {
            isms_detect::builtin::builtin_rules()
        } else {
            LoadedRules::default()
        };
        for directory in [&self.rules_dir, &self.api_rules_dir] {
            match isms_detect::load_directory_with_lists(directory, &[], &lists) {
                Ok(from_directory) => {
                    loaded.files += from_directory.files;
                    loaded.errors.extend(from_directory.errors);
                    loaded
                        .expand_placeholders
                        .extend(from_directory.expand_placeholders);
                    for rule in from_directory.rules {
                        isms_detect::rule::add_unique(&mut loaded, rule);
                    }
                }
                Err(error) => {
                    tracing::error!(directory = %directory.display(), %error, "rules directory not readable");
                }
            }
        }
        let overrides = self.overrides();
        if !overrides.is_empty() {
            let rules = std::mem::take(&mut loaded.rules);
            for rule in rules {
                match overrides.get(rule.id()) {
                    None => loaded.rules.push(rule),
                    Some(change) => match apply_override(&rule, change) {
                        Ok(changed) => loaded.rules.push(changed),
                        Err(error) => {
                            // The file changed under the override: the rule as written still runs.
                            loaded.errors.push(error);
                            loaded.rules.push(rule);
                        }
                    },
                }
            }
        }
        // The rules are compiled: the lists are no longer shared.
        let lists = Arc::try_unwrap(lists).unwrap_or_else(|shared| (*shared).clone());
        (loaded, lists)
    }

    /// The lists as the lists directory gives them now.
    fn load_lists(&self) -> Lists {
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
        lists
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
        for problem in isms_detect::rule::chain_problems(&loaded.rules) {
            tracing::warn!(%problem, "detection rule cannot fire");
        }
    }

    /// The run-time changes of rules (parameters, enabled), by rule id.
    fn overrides(&self) -> BTreeMap<String, RuleOverride> {
        match std::fs::read(&self.overrides_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                tracing::error!(path = %self.overrides_path.display(), %error, "rule overrides not readable; ignored");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        }
    }

    /// Reloads everything now (at start, after an API change).
    fn reload_now(&self) {
        let rules_now = self.rules_fingerprint_now();
        let lists_now = directory_fingerprint(&self.lists_dir);
        let (loaded, lists) = self.load();
        self.install(loaded, Some(lists));
        *self.rules_fingerprint.lock().expect("not poisoned") = rules_now;
        *self.lists_fingerprint.lock().expect("not poisoned") = lists_now;
    }

    /// Hands loaded rules (and lists, when given) to the engine and the API.
    fn install(&self, loaded: LoadedRules, lists: Option<Lists>) {
        Self::report_load(&loaded);
        *self.expand_placeholders.lock().expect("not poisoned") =
            loaded.expand_placeholders.clone();
        *self.rule_errors.lock().expect("not poisoned") = loaded.errors;
        *self.all_rules.lock().expect("not poisoned") = loaded.rules.clone();
        let mut engine = self.engine.lock().expect("not poisoned");
        engine.set_rules(loaded.rules);
        if let Some(lists) = lists {
            engine.set_lists(lists);
        }
    }

    /// Every loaded rule, disabled ones too.
    pub fn all_rules(&self) -> Vec<Rule> {
        self.all_rules.lock().expect("not poisoned").clone()
    }

    fn rules_fingerprint_now(&self) -> Vec<(PathBuf, SystemTime, u64)> {
        let mut fingerprint = directory_fingerprint(&self.rules_dir);
        fingerprint.extend(directory_fingerprint(&self.api_rules_dir));
        fingerprint.extend(file_fingerprint(&self.overrides_path));
        fingerprint
    }

    /// Where a rule comes from, if it is loaded: `built-in:...`, a file of the rules directory, or
    /// the API's directory.
    fn rule_source(&self, id: &str) -> Option<String> {
        self.all_rules
            .lock()
            .expect("not poisoned")
            .iter()
            .find(|rule| rule.id() == id)
            .map(|rule| rule.source.clone())
    }

    /// Creates a rule (or, with `replace`, replaces one made through the API). The rule is checked
    /// first; the answer names what is wrong.
    pub fn put_rule(
        &self,
        definition: RuleDefinition,
        replace: bool,
    ) -> Result<(), RuleChangeError> {
        let _changing = self.changing.lock().expect("not poisoned");
        let path = self.api_rules_dir.join(format!("{}.yml", definition.id));
        let rule = Rule::compile(definition.clone(), &path.display().to_string())
            .map_err(RuleChangeError::Invalid)?;
        match self.rule_source(rule.id()) {
            Some(source) if Path::new(&source) != path => {
                return Err(RuleChangeError::Conflict(format!(
                    "rule `{}` is defined in {source}; change it there, or its parameters through PATCH",
                    rule.id()
                )));
            }
            Some(_) if !replace => {
                return Err(RuleChangeError::Conflict(format!(
                    "rule `{}` exists; PUT /api/rules/{} replaces it",
                    rule.id(),
                    rule.id()
                )));
            }
            None if replace => return Err(RuleChangeError::NotFound(rule.id().to_owned())),
            _ => {}
        }
        // JSON is YAML too: the rule loader reads it like any rule file.
        let text = serde_json::to_string_pretty(&definition)
            .map_err(|error| RuleChangeError::Io(error.to_string()))?;
        write_atomically(&path, text.as_bytes())
            .map_err(|error| RuleChangeError::Io(error.to_string()))?;
        drop(_changing);
        self.reload_now();
        Ok(())
    }

    /// Deletes a rule made through the API.
    pub fn delete_rule(&self, id: &str) -> Result<(), RuleChangeError> {
        let _changing = self.changing.lock().expect("not poisoned");
        let path = self.api_rules_dir.join(format!("{id}.yml"));
        match self.rule_source(id) {
            None => return Err(RuleChangeError::NotFound(id.to_owned())),
            Some(source) if Path::new(&source) != path => {
                return Err(RuleChangeError::Conflict(format!(
                    "rule `{id}` is defined in {source}, not through the API; remove it there, or disable it through PATCH"
                )));
            }
            Some(_) => {}
        }
        std::fs::remove_file(&path).map_err(|error| RuleChangeError::Io(error.to_string()))?;
        let mut overrides = self.overrides();
        if overrides.remove(id).is_some() {
            self.write_overrides(&overrides)?;
        }
        drop(_changing);
        self.reload_now();
        Ok(())
    }

    /// Changes a rule's parameters (a null value puts the default back) or `enabled` at run time.
    /// Checked against the kind's parameter list before anything is saved.
    pub fn change_rule(&self, id: &str, change: RuleOverride) -> Result<(), RuleChangeError> {
        let _changing = self.changing.lock().expect("not poisoned");
        let rule = self
            .all_rules
            .lock()
            .expect("not poisoned")
            .iter()
            .find(|rule| rule.id() == id)
            .cloned()
            .ok_or_else(|| RuleChangeError::NotFound(id.to_owned()))?;
        let mut overrides = self.overrides();
        let mut merged = overrides.get(id).cloned().unwrap_or_default();
        for (name, value) in change.parameters {
            merged.parameters.insert(name, value);
        }
        if change.enabled.is_some() {
            merged.enabled = change.enabled;
        }
        // The loaded rule has the earlier changes laid over it already; laying them all over it again
        // gives what the next load will make of it.
        apply_override(&rule, &merged).map_err(RuleChangeError::Invalid)?;
        overrides.insert(id.to_owned(), merged);
        self.write_overrides(&overrides)?;
        drop(_changing);
        self.reload_now();
        Ok(())
    }

    fn write_overrides(
        &self,
        overrides: &BTreeMap<String, RuleOverride>,
    ) -> Result<(), RuleChangeError> {
        let text = serde_json::to_vec_pretty(overrides)
            .map_err(|error| RuleChangeError::Io(error.to_string()))?;
        write_atomically(&self.overrides_path, &text)
            .map_err(|error| RuleChangeError::Io(error.to_string()))
    }

    /// Adds entries to a list (its file is created if need be); returns how many were new.
    pub fn add_to_list(&self, list: &str, entries: &[String]) -> Result<usize, RuleChangeError> {
        let _changing = self.changing.lock().expect("not poisoned");
        check_list_name(list)?;
        for entry in entries {
            check_list_entry(entry)?;
        }
        // The new ones only, once each.
        let mut seen = std::collections::HashSet::new();
        let new: Vec<&str> = self.with_engine(|engine| {
            entries
                .iter()
                .map(String::as_str)
                .filter(|entry| !engine.lists().contains(list, entry))
                .filter(|entry| seen.insert(isms_detect::lists::normalized_entry(entry)))
                .collect()
        });
        append_to_list_file(&self.lists_dir, list, &new)?;
        self.reload_lists_now();
        Ok(new.len())
    }

    /// Reads the lists directory again (after a change of a list), and the rules too when some
    /// Sigma rule expands placeholders (from lists).
    fn reload_lists_now(&self) {
        if !self
            .expand_placeholders
            .lock()
            .expect("not poisoned")
            .is_empty()
        {
            self.reload_now();
            return;
        }
        let lists_now = directory_fingerprint(&self.lists_dir);
        let lists = self.load_lists();
        self.engine.lock().expect("not poisoned").set_lists(lists);
        *self.lists_fingerprint.lock().expect("not poisoned") = lists_now;
    }

    /// Removes entries from a list (its file is rewritten without them); returns how many went.
    pub fn remove_from_list(
        &self,
        list: &str,
        entries: &[String],
    ) -> Result<usize, RuleChangeError> {
        let _changing = self.changing.lock().expect("not poisoned");
        check_list_name(list)?;
        let path = self.lists_dir.join(format!("{list}.txt"));
        let text = std::fs::read_to_string(&path)
            .map_err(|_| RuleChangeError::NotFound(format!("list {list}")))?;
        let removing: Vec<String> = entries
            .iter()
            .map(|entry| isms_detect::lists::normalized_entry(entry))
            .collect();
        let mut removed = 0;
        let kept: String = text
            .lines()
            .filter(|line| {
                let entry = line.split('#').next().unwrap_or("").trim();
                let drop = !entry.is_empty()
                    && removing.contains(&isms_detect::lists::normalized_entry(entry));
                if drop {
                    removed += 1;
                }
                !drop
            })
            .map(|line| format!("{line}\n"))
            .collect();
        write_atomically(&path, kept.as_bytes())
            .map_err(|error| RuleChangeError::Io(error.to_string()))?;
        drop(_changing);
        self.reload_lists_now();
        Ok(removed)
    }

    /// Reloads rules and lists if a file of their directories changed since the last look.
    fn reload_if_changed(&self) {
        let _changing = self.changing.lock().expect("not poisoned");
        let rules_now = self.rules_fingerprint_now();
        let lists_now = directory_fingerprint(&self.lists_dir);
        let rules_changed = *self.rules_fingerprint.lock().expect("not poisoned") != rules_now;
        let lists_changed = *self.lists_fingerprint.lock().expect("not poisoned") != lists_now;
        if !rules_changed && !lists_changed {
            return;
        }
        let (loaded, lists) = self.load();
        if lists_changed {
            tracing::info!(lists = lists.names().count(), "detection lists reloaded");
        }
        // Rules expanded from lists follow the lists (a rule whose match is the same keeps its
        // state).
        if rules_changed || !loaded.expand_placeholders.is_empty() {
            self.install(loaded, lists_changed.then_some(lists));
        } else {
            self.engine.lock().expect("not poisoned").set_lists(lists);
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

    /// Stops detection at shutdown: what is committed is processed, its detections stored and the
    /// state saved (waits at most `limit`).
    pub async fn stop(&self, limit: Duration) {
        self.stop.notify_one();
        if tokio::time::timeout(limit, self.stopped.notified())
            .await
            .is_err()
        {
            tracing::error!(
                ?limit,
                "detection did not stop in time; its state may be older than its last detections"
            );
        }
    }

    /// Saves the engine's state and the seq processed through (temporary file, fsync, rename).
    fn save_state(&self) -> std::io::Result<()> {
        let engine = self.engine.lock().expect("not poisoned");
        let processed = *self.processed_seq.lock().expect("not poisoned");
        let temporary = self.state_path.with_extension("json.tmp");
        {
            let file = std::fs::File::create(&temporary)?;
            let mut writer = std::io::BufWriter::new(file);
            use std::io::Write;
            let next_runs = self.next_runs.lock().expect("not poisoned").clone();
            write!(
                writer,
                "{{\"processed_seq\":{processed},\"scheduled_next_runs\":{},\"engine\":",
                serde_json::to_string(&next_runs).map_err(std::io::Error::other)?
            )?;
            engine
                .write_snapshot(&mut writer)
                .map_err(std::io::Error::other)?;
            writer.write_all(b"}")?;
            let file = writer.into_inner().map_err(|error| error.into_error())?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, &self.state_path)?;
        Ok(())
    }

    /// Records that every detection of the events through `seq` is stored.
    fn write_progress(&self, seq: i64) -> std::io::Result<()> {
        let temporary = self.progress_path.with_extension("json.tmp");
        std::fs::write(
            &temporary,
            format!("{{\"detections_stored_through_seq\":{seq}}}"),
        )?;
        std::fs::rename(&temporary, &self.progress_path)
    }

    /// The seq every detection was stored through, as last recorded.
    fn read_progress(&self) -> Option<i64> {
        #[derive(serde::Deserialize)]
        struct Progress {
            detections_stored_through_seq: i64,
        }
        let text = std::fs::read(&self.progress_path).ok()?;
        match serde_json::from_slice::<Progress>(&text) {
            Ok(progress) => Some(progress.detections_stored_through_seq),
            Err(error) => {
                tracing::warn!(path = %self.progress_path.display(), %error, "detection progress not readable; detections after the last snapshot may be stored again");
                None
            }
        }
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
            /// When each scheduled rule was to run next: a run missed while the server was down
            /// is made up for at start (once, however many were missed).
            #[serde(default)]
            scheduled_next_runs: BTreeMap<String, i64>,
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
                *self.next_runs.lock().expect("not poisoned") = saved.scheduled_next_runs;
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
    let api_rules_dir = directory("", "rules-api")?;
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
        rules_fingerprint: Mutex::new(Vec::new()),
        lists_fingerprint: Mutex::new(directory_fingerprint(&lists_dir)),
        expand_placeholders: Mutex::new(std::collections::BTreeSet::new()),
        overrides_path: config.data_dir.join("rule-overrides.json"),
        changing: Mutex::new(()),
        api_rules_dir,
        rules_dir,
        lists_dir,
        builtin: config.detect.builtin_rules.is_on(),
        state_path: config.data_dir.join("detect-state.json"),
        snapshot_interval: Duration::from_secs(config.detect.snapshot_interval_seconds),
        processed_seq: Mutex::new(0),
        progress_path: config.data_dir.join("detect-progress.json"),
        stored_through_before_restart: Mutex::new(0),
        rule_errors: Mutex::new(Vec::new()),
        all_rules: Mutex::new(Vec::new()),
        next_runs: Mutex::new(BTreeMap::new()),
        stop: tokio::sync::Notify::new(),
        stopped: tokio::sync::Notify::new(),
    });
    service.reload_now();
    let start = match service.restore_state() {
        Some(processed) => processed,
        // First start: what is stored from now on.
        None => *store.committed_seq().borrow(),
    };
    *service.processed_seq.lock().expect("not poisoned") = start;
    if let Some(stored_through) = service.read_progress()
        && stored_through > start
    {
        tracing::info!(
            processed_seq = start,
            stored_through,
            "detection catches up after a crash; detections already stored are not stored again"
        );
        *service
            .stored_through_before_restart
            .lock()
            .expect("not poisoned") = stored_through;
    }
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
/// `detect.snapshot_interval_seconds` a snapshot.
async fn follow_store(service: Arc<DetectService>, store: Arc<dyn Store>) {
    let mut committed = store.committed_seq();
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_reload = tokio::time::Instant::now();
    let mut last_snapshot = tokio::time::Instant::now();
    // Detections not stored yet (the store failed): tried again before anything else.
    let mut unstored: Vec<Detection> = Vec::new();
    loop {
        let mut stopping = false;
        let mut stored_some = false;
        tokio::select! {
            changed = committed.changed() => {
                if changed.is_err() {
                    tracing::debug!("store closed; detection stops");
                    service.stopped.notify_one();
                    return;
                }
            }
            _ = service.stop.notified() => stopping = true,
            _ = clock.tick() => {
                let now = jiff::Timestamp::now().as_microsecond();
                let detections = service.engine.lock().expect("not poisoned").tick(now);
                unstored.extend(detections);
                unstored.extend(run_scheduled(&service, store.as_ref(), now).await);
                if last_reload.elapsed() >= RELOAD_INTERVAL {
                    last_reload = tokio::time::Instant::now();
                    let reloading = service.clone();
                    if let Err(error) = tokio::task::spawn_blocking(move || reloading.reload_if_changed()).await {
                        tracing::error!(%error, "detection reload failed");
                    }
                }
            }
        }
        loop {
            if !unstored.is_empty() {
                store_detections(store.as_ref(), &mut unstored).await;
                if !unstored.is_empty() {
                    // The store refuses: wait for the next wake-up rather than spin.
                    break;
                }
                stored_some = true;
            }
            let after = *service.processed_seq.lock().expect("not poisoned");
            let batch = match store.events_after(after, READ_BATCH).await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(%error, after, "detection cannot read the store");
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            unstored.extend(process_batch(&service, batch));
        }
        if stored_some && unstored.is_empty() {
            let processed = *service.processed_seq.lock().expect("not poisoned");
            if let Err(error) = service.write_progress(processed) {
                tracing::warn!(%error, "detection progress not written; after a crash some detections may be stored again");
            }
        }
        // Saved only here, with every detection of the events processed so far stored: the state
        // and the seq then agree, and what a restart reads again has raised nothing yet.
        if (stopping || last_snapshot.elapsed() >= service.snapshot_interval) && unstored.is_empty()
        {
            last_snapshot = tokio::time::Instant::now();
            let saving = service.clone();
            match tokio::task::spawn_blocking(move || saving.save_state()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "detection state not saved"),
                Err(error) => tracing::error!(%error, "detection state not saved"),
            }
        }
        if stopping {
            if !unstored.is_empty() {
                tracing::error!(
                    detections = unstored.len(),
                    "detections not stored at shutdown (the store refused them); the state was not saved, so their events are read again at the next start"
                );
            }
            service.stopped.notify_one();
            return;
        }
    }
}

/// Runs the scheduled rules that are due at `now`: each searches the store over its look-back
/// (leaving out its own detections), counts (per value of its group_by field), and the engine turns
/// the counts that satisfy it into detections.
async fn run_scheduled(service: &DetectService, store: &dyn Store, now: i64) -> Vec<Detection> {
    let scheduled = service.with_engine(|engine| engine.scheduled_rules());
    let mut due = Vec::new();
    {
        let mut next_runs = service.next_runs.lock().expect("not poisoned");
        next_runs.retain(|id, _| scheduled.iter().any(|(known, _, _)| known == id));
        for (id, query, config) in scheduled {
            let Some(next) = config
                .next_run_after(now - 1_000_000)
                .map(|first| *next_runs.entry(id.clone()).or_insert(first))
            else {
                continue;
            };
            if next <= now {
                if let Some(following) = config.next_run_after(now) {
                    next_runs.insert(id.clone(), following);
                }
                due.push((id, query, config));
            }
        }
    }
    let mut detections = Vec::new();
    for (id, query, config) in due {
        let Ok(predicate) = isms_query::parse(&query) else {
            continue;
        };
        let own_detections = isms_query::Predicate::Field {
            field: isms_query::FieldPath::parse_dotted("details.rule_id"),
            test: isms_query::FieldTest::Equals(id.clone()),
        };
        let filter = isms_store::EventFilter {
            predicate: isms_query::Predicate::And(vec![
                predicate,
                isms_query::Predicate::Not(Box::new(own_detections)),
            ]),
            from_micros: Some(now - config.look_back_micros),
            to_micros: Some(now),
        };
        let counts: Result<Vec<(String, u64)>, _> = match config.group_by.first() {
            Some(field) => store.top_values(&filter, field, 1000).await.map(|values| {
                values
                    .into_iter()
                    .map(|top| (top.value, top.count))
                    .collect()
            }),
            None => store
                .count(&filter)
                .await
                .map(|count| vec![(String::new(), count)]),
        };
        match counts {
            Ok(counts) => {
                metrics::counter!("isms_detect_scheduled_runs_total", "rule" => id.clone())
                    .increment(1);
                detections.extend(
                    service
                        .engine
                        .lock()
                        .expect("not poisoned")
                        .scheduled_result(&id, &counts, now),
                );
            }
            Err(error) => tracing::error!(rule = %id, %error, "scheduled rule's search failed"),
        }
    }
    detections
}

/// Runs stored events through the engine (the detections' own events are skipped: the engine fed
/// them back itself).
fn process_batch(service: &DetectService, batch: Vec<StoredEvent>) -> Vec<Detection> {
    let now = jiff::Timestamp::now().as_microsecond();
    let mut detections = Vec::new();
    let mut engine = service.engine.lock().expect("not poisoned");
    let last = batch.last().map(|stored| stored.seq);
    let stored_through = *service
        .stored_through_before_restart
        .lock()
        .expect("not poisoned");
    let mut dropped = 0usize;
    for stored in batch {
        if is_detection(&stored.document) {
            continue;
        }
        if stored.seq <= stored_through {
            // Processed before a crash, its detections stored then: the state is rebuilt, the
            // detections (and values for lists, already written) are not made twice.
            if let Some(event) = event_of(stored) {
                dropped += engine.process(&event).len();
                engine.take_list_additions();
            }
            continue;
        }
        let Some(event) = event_of(stored) else {
            continue;
        };
        let lag = (now - event.receivedtimestamp_micros).max(0) as f64 / 1e6;
        metrics::histogram!("isms_detect_lag_seconds").record(lag);
        detections.extend(engine.process(&event));
    }
    if let Some(last) = last {
        *service.processed_seq.lock().expect("not poisoned") = last;
    }
    if dropped > 0 {
        tracing::info!(
            detections = dropped,
            "detections stored before the restart not stored again"
        );
    }
    let additions = engine.take_list_additions();
    drop(engine);
    let mut by_list: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (list, value) in &additions {
        by_list.entry(list).or_default().push(value);
    }
    for (list, values) in by_list {
        if let Err(error) = append_to_list_file(&service.lists_dir, list, &values) {
            // The values stay in the engine's lists until the next reload.
            tracing::warn!(%list, %error, "values a rule added to a list not written");
        }
    }
    detections
}

/// Stores detections as events; keeps those the store refused in `unstored`.
async fn store_detections(store: &dyn Store, unstored: &mut Vec<Detection>) {
    let events: Vec<Event> = unstored
        .iter()
        .map(|detection| {
            detection
                .event
                .clone()
                .unwrap_or_else(|| detection.to_event())
        })
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

/// Appends values to a list's file (created if need be), in one write.
fn append_to_list_file(
    directory: &Path,
    list: &str,
    values: &[&str],
) -> Result<(), RuleChangeError> {
    check_list_name(list)?;
    if values.is_empty() {
        return Ok(());
    }
    let path = directory.join(format!("{list}.txt"));
    let text: String = values
        .iter()
        .map(|value| format!("{}\n", value.replace(['\n', '\r', '#'], " ")))
        .collect();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| {
            use std::io::Write;
            file.write_all(text.as_bytes())
        })
        .map_err(|error| RuleChangeError::Io(format!("{}: {error}", path.display())))
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

/// A rule's run-time changes: parameters laid over its own (null puts the kind's default back), and
/// whether it runs.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOverride {
    /// Parameters by name.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// `false` to stop the rule, `true` to run it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Why a change of rules or lists was refused.
#[derive(Debug, thiserror::Error)]
pub enum RuleChangeError {
    /// The rule (or parameters) do not check.
    #[error("{0}")]
    Invalid(RuleError),
    /// The rule belongs to a file, or already exists.
    #[error("{0}")]
    Conflict(String),
    /// No such rule or list.
    #[error("no such rule or list: {0}")]
    NotFound(String),
    /// A name or entry that cannot be kept.
    #[error("{0}")]
    BadInput(String),
    /// The change could not be written.
    #[error("the change could not be saved: {0}")]
    Io(String),
}

/// `rule` with `change` laid over it, compiled again.
fn apply_override(rule: &Rule, change: &RuleOverride) -> Result<Rule, RuleError> {
    let mut definition = rule.definition.clone();
    for (name, value) in &change.parameters {
        if value.is_null() {
            definition.parameters.remove(name);
        } else {
            definition.parameters.insert(name.clone(), value.clone());
        }
    }
    if let Some(enabled) = change.enabled {
        definition.enabled = enabled;
    }
    Rule::compile(definition, &rule.source).map_err(|mut error| {
        error.reason = format!("run-time change: {}", error.reason);
        error
    })
}

fn check_list_name(list: &str) -> Result<(), RuleChangeError> {
    if list.is_empty()
        || list.len() > 128
        || list.starts_with('.')
        || !list
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(RuleChangeError::BadInput(format!(
            "list name `{list}` must be 1 to 128 letters, digits, - _ or . (not starting with .)"
        )));
    }
    Ok(())
}

fn check_list_entry(entry: &str) -> Result<(), RuleChangeError> {
    if entry.trim().is_empty() || entry.len() > 1024 || entry.contains(['\n', '\r', '#']) {
        return Err(RuleChangeError::BadInput(format!(
            "list entry {entry:?} must be 1 to 1024 characters on one line, without #"
        )));
    }
    Ok(())
}

/// Writes a file through a temporary one, fsynced, then renamed over it.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&temporary)?;
        use std::io::Write;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)
}

fn file_fingerprint(path: &Path) -> Option<(PathBuf, SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((
        path.to_path_buf(),
        metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        metadata.len(),
    ))
}
