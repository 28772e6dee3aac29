//! `isms replay`: the detection engine offline, over log files, in event-time order.
//!
//! How users test rules before they deploy them and how they look back at what happened (forensics):
//! the same engine as `isms serve`, the same decoders as `isms decode`, so what a replay shows is
//! what the server would have raised. Files are syslog text, JSON lines (MozDef events or records
//! such as Suricata's), or MozDef JSON (an object or an array). Their events are put in event-time
//! order as they are read (files of one host rotated into several, or several hosts' logs,
//! interleave): each file through a bounded reordering heap, the files merged by their next event's
//! time, so a replay of gigabytes holds a bounded number of events, not the files. A file of JSON
//! lines is decoded on every core ([`lines`]): routine lines no match rule can take are ruled out
//! from their text, unparsed, which is most of a routine log.
//!
//! The lists (`--lists`) are read before the rules: Sigma `|expand` placeholders take their values
//! from them. When a rule adds a value to a list some `|expand` placeholder names, the rules are
//! compiled again with the lists as they are then (rules whose match did not change keep their
//! state), as the server does when a list file changes.
//!
//! Exit status, like grep: 0 when a rule fired, 1 when none did, 2 on an error.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use isms_detect::{Detection, DetectionState, Engine, EngineOptions, Lists, LoadedRules};
use isms_event::{Event, Origin};
use serde_json::Value;

mod lines;

use crate::commands::{
    FileItem, line_decoder, open_input, progress_bar, read_items, terminal_safe, written_at,
};

#[derive(Debug, clap::Args)]
pub struct ReplayOptions {
    /// Log files to replay ("-" for standard input).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// A directory of rule files (*.yml, *.yaml; searched recursively). May be given several times.
    #[arg(long, value_name = "DIR")]
    pub rules: Vec<PathBuf>,
    /// Also run the built-in rule pack.
    #[arg(long)]
    pub builtin: bool,
    /// A Sigma pipeline file (or the name of an optional shipped one, e.g. `windows-evtx`), applied
    /// to the Sigma rules after the shipped pipelines and the rules directory's own. May be given
    /// several times.
    #[arg(long, value_name = "FILE")]
    pub pipeline: Vec<PathBuf>,
    /// A directory of list files (NAME.txt or NAME.list: one entry per line); also the values of
    /// Sigma `|expand` placeholders (`%NAME%`) that no pipeline gives.
    #[arg(long, value_name = "DIR")]
    pub lists: Option<PathBuf>,
    /// Print detections as JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Time zone of times written without one (`UTC`, `+02:00`, `Europe/Berlin`).
    #[arg(long, default_value = "UTC")]
    pub time_zone: String,
    /// A file of your own decoders (as `decoders.file`), tried before the built-in ones.
    #[arg(long, value_name = "FILE")]
    pub decoders: Option<PathBuf>,
    /// The program of lines that name none (a daemon's own log file, e.g. `vsftpd`).
    #[arg(long)]
    pub program: Option<String>,
    /// Most times a detection is fed back to the rules as an event.
    #[arg(long, default_value_t = 5)]
    pub max_chain_depth: u32,
}

/// Runs a replay; the exit status says whether anything fired.
pub fn replay(options: ReplayOptions) -> anyhow::Result<ExitCode> {
    let lists = std::sync::Arc::new(read_lists(options.lists.as_deref())?);
    let loaded = load_rules(&options, &lists)?;
    let expand_placeholders = loaded.expand_placeholders.clone();
    let lists = std::sync::Arc::try_unwrap(lists).unwrap_or_else(|shared| (*shared).clone());
    let rule_count = loaded.rules.len();
    let mut recompiled = 0u64;
    let mut engine = Engine::new(
        loaded.rules,
        lists,
        EngineOptions {
            // Merged in event-time order: nothing arrives late (beyond the reordering bound).
            allowed_lateness_micros: 0,
            max_chain_depth: options.max_chain_depth,
        },
    );
    let bar = progress_bar(0, "{msg} {pos} events ({per_sec})", "replaying".to_owned());
    let started = Instant::now();
    // Detections fired and cleared.
    let mut tally = (0u64, 0u64);
    // Detections are written on a thread of their own: with many matches, formatting and writing
    // them took a fifth of the detection thread.
    let mut printer = DetectionPrinter::start(options.json);
    let mut batch: Vec<Printable> = Vec::new();
    // Detections in the batch (it is handed over at PRINT_BATCH).
    let mut batch_detections = 0usize;
    // Adds an event's detections to the batch; returns how many.
    let take = |detections: Vec<Detection>, batch: &mut Vec<Printable>, tally: &mut (u64, u64)| {
        let added = detections.len();
        let (fired, cleared) = fired_and_cleared(&detections);
        tally.0 += fired;
        tally.1 += cleared;
        if !detections.is_empty() {
            batch.push(Printable::Made(detections));
        }
        added
    };
    // With only match rules, events no rule can match are ruled out as they are read, before the
    // stored event is built (most of a routine log); they count as replayed. Not when rules may be
    // compiled again while replaying (lists that grow under `|expand`): the test would be stale.
    // With rules that keep no state, the workers decoding JSON lines also run their events
    // through copies of the engine: detection then runs on every core, and only what fired comes
    // here, in time order.
    let read_ahead = if expand_placeholders.is_empty() {
        ReadAhead {
            prefilter: engine.event_prefilter().map(std::sync::Arc::new),
            shared_engine: Some(&engine),
            worker_engine: std::sync::OnceLock::new(),
            print_json: options.json,
        }
    } else {
        ReadAhead::default()
    };
    let mut merged = MergedEvents::open(&options, &read_ahead)?;
    let mut count = 0u64;
    while let Some((file, item)) = merged.next_event()? {
        count += 1;
        if count.is_multiple_of(4096) {
            bar.set_position(count);
        }
        let event = match item {
            Replayed::Event(event) => event,
            Replayed::Detected(detected) => {
                tally.0 += detected.fired;
                tally.1 += detected.cleared;
                batch_detections += (detected.fired + detected.cleared) as usize;
                batch.push(Printable::Printed(detected.printed));
                if batch_detections >= PRINT_BATCH {
                    batch_detections = 0;
                    printer.print(std::mem::take(&mut batch))?;
                }
                continue;
            }
        };
        batch_detections += take(engine.process(&event), &mut batch, &mut tally);
        if !expand_placeholders.is_empty()
            && engine
                .take_list_additions()
                .iter()
                .any(|(list, _)| expand_placeholders.contains(list))
        {
            // A list an `|expand` placeholder names has grown: its rules follow it.
            let lists = std::sync::Arc::new(engine.lists().clone());
            engine.set_rules(compile_rules(&options, &lists)?.rules);
            recompiled += 1;
        }
        merged.give_back(file, event);
        if batch_detections >= PRINT_BATCH {
            batch_detections = 0;
            printer.print(std::mem::take(&mut batch))?;
        }
    }
    take(engine.finish(), &mut batch, &mut tally);
    let (fired, cleared) = tally;
    printer.print(batch)?;
    printer.finish()?;
    bar.finish_and_clear();
    let count = count + merged.ruled_out();
    let seconds = started.elapsed().as_secs_f64();
    let statistics = engine.statistics();
    let chain_stops = statistics.chain_stops + merged.chain_stops();
    eprintln!(
        "replayed {count} events ({} lines or records not readable{}) through {rule_count} rules: {fired} fired, {cleared} cleared in {seconds:.2} s ({:.0} events/s){}{}{}",
        merged.unreadable(),
        if merged.out_of_order() > 0 {
            format!(
                "; {} came more than {} minutes, {} events or {} MiB of detections after later ones in their file and were taken late",
                merged.out_of_order(),
                REORDER_WINDOW_MICROS / 60_000_000,
                merged.reorder_bound.events,
                merged.reorder_bound.printed_bytes / (1024 * 1024)
            )
        } else {
            String::new()
        },
        count as f64 / seconds.max(1e-9),
        if chain_stops > 0 {
            format!("; {chain_stops} detections not fed back (chain depth limit)")
        } else {
            String::new()
        },
        if statistics.evictions > 0 {
            format!("; {} entities evicted (max_entities)", statistics.evictions)
        } else {
            String::new()
        },
        if recompiled > 0 {
            format!(
                "; rules compiled again {recompiled} times (lists of `|expand` placeholders grew)"
            )
        } else {
            String::new()
        },
    );
    Ok(if fired > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The pipelines of `--pipeline`: files, or the names of optional shipped pipelines.
fn read_pipelines(
    given: &[PathBuf],
) -> anyhow::Result<Vec<std::sync::Arc<isms_detect::sigma_pipeline::SigmaPipeline>>> {
    let mut pipelines = Vec::new();
    for path in given {
        let name = path.to_str().unwrap_or_default();
        let pipeline = match isms_detect::sigma_pipeline::optional_pipeline(name) {
            Some(shipped) if !path.exists() => shipped?,
            _ => isms_detect::sigma_pipeline::read_pipeline_file(path)?,
        };
        pipelines.push(std::sync::Arc::new(pipeline));
    }
    Ok(pipelines)
}

/// The lists of `--lists DIR` (none without it); a list file that cannot be read is reported.
fn read_lists(directory: Option<&Path>) -> anyhow::Result<Lists> {
    let mut lists = Lists::default();
    if let Some(directory) = directory {
        let problems = lists
            .load_directory(directory)
            .with_context(|| format!("cannot read the lists directory {}", directory.display()))?;
        for problem in problems {
            eprintln!("list not loaded: {problem}");
        }
    }
    Ok(lists)
}

/// Adds the rules of each directory to `loaded` (an id already taken is reported, not loaded);
/// Sigma `|expand` placeholders take their values from `lists`.
fn add_directories(
    loaded: &mut LoadedRules,
    directories: &[PathBuf],
    pipelines: &[std::sync::Arc<isms_detect::sigma_pipeline::SigmaPipeline>],
    lists: &std::sync::Arc<Lists>,
) -> anyhow::Result<()> {
    for directory in directories {
        let from_directory = isms_detect::load_directory_with_lists(directory, pipelines, lists)
            .with_context(|| format!("cannot read the rules directory {}", directory.display()))?;
        loaded.files += from_directory.files;
        loaded.errors.extend(from_directory.errors);
        loaded.pipelines.extend(from_directory.pipelines);
        loaded
            .expand_placeholders
            .extend(from_directory.expand_placeholders);
        for rule in from_directory.rules {
            isms_detect::rule::add_unique(loaded, rule);
        }
    }
    Ok(())
}

/// `isms sigma check`: compiles the rules of the directories without running them and reports
/// each that cannot be used; exit status 0 when all can, 1 when some cannot.
pub fn check_rules(
    directories: &[PathBuf],
    pipeline_files: &[PathBuf],
    lists_directory: Option<&Path>,
    show: bool,
) -> anyhow::Result<ExitCode> {
    let pipelines = read_pipelines(pipeline_files)?;
    let lists = std::sync::Arc::new(read_lists(lists_directory)?);
    let mut loaded = LoadedRules::default();
    add_directories(&mut loaded, directories, &pipelines, &lists)?;
    let sigma = loaded
        .rules
        .iter()
        .filter(|rule| {
            rule.definition
                .tags
                .iter()
                .any(|tag| tag.starts_with("sigma:"))
        })
        .count();
    println!(
        "{} rules compiled from {} files ({sigma} from Sigma), {} not",
        loaded.rules.len(),
        loaded.files,
        loaded.errors.len()
    );
    let shipped: Vec<&str> = isms_detect::sigma_pipeline::SHIPPED_PIPELINES
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let mut own: Vec<String> = loaded
        .pipelines
        .iter()
        .map(|(name, source)| format!("{name} ({source})"))
        .collect();
    own.extend(
        pipelines
            .iter()
            .map(|pipeline| format!("{} ({})", pipeline.name, pipeline.source)),
    );
    println!(
        "Sigma pipelines: shipped {}{}",
        shipped.join(", "),
        if own.is_empty() {
            String::new()
        } else {
            format!("; then {}", own.join(", "))
        }
    );
    for error in &loaded.errors {
        println!("  not loaded: {}", terminal_safe(&error.to_string()));
    }
    for problem in isms_detect::rule::chain_problems(&loaded.rules) {
        println!("  warning: {}", terminal_safe(&problem.to_string()));
    }
    if show {
        for rule in &loaded.rules {
            println!(
                "{}  {}{}  {}",
                terminal_safe(rule.id()),
                rule.definition.kind,
                if rule.definition.enabled {
                    ""
                } else {
                    " (disabled)"
                },
                terminal_safe(&rule.definition.query)
            );
        }
    }
    Ok(if loaded.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Loads the rules asked for and prints the summary: how many loaded, and each one that did not with
/// its file, line and reason. Fails only when no rule at all can run.
/// The rules of `--builtin` and `--rules`, compiled with `lists`.
fn compile_rules(
    options: &ReplayOptions,
    lists: &std::sync::Arc<Lists>,
) -> anyhow::Result<LoadedRules> {
    let mut loaded = if options.builtin {
        isms_detect::builtin::builtin_rules()
    } else {
        LoadedRules::default()
    };
    let pipelines = read_pipelines(&options.pipeline)?;
    add_directories(&mut loaded, &options.rules, &pipelines, lists)?;
    Ok(loaded)
}

/// The rules of the replay, compiled with `lists` (printed: what loaded, what did not).
fn load_rules(
    options: &ReplayOptions,
    lists: &std::sync::Arc<Lists>,
) -> anyhow::Result<LoadedRules> {
    if options.rules.is_empty() && !options.builtin {
        anyhow::bail!("no rules: give --rules DIR (several times if needed) and/or --builtin");
    }
    let loaded = compile_rules(options, lists)?;
    let disabled = loaded
        .rules
        .iter()
        .filter(|rule| !rule.definition.enabled)
        .count();
    eprintln!(
        "rules: {} loaded from {} files{}, {} not loaded",
        loaded.rules.len(),
        loaded.files,
        if disabled > 0 {
            format!(" ({disabled} disabled)")
        } else {
            String::new()
        },
        loaded.errors.len()
    );
    for error in &loaded.errors {
        eprintln!("  not loaded: {error}");
    }
    for problem in isms_detect::rule::chain_problems(&loaded.rules) {
        eprintln!("  warning: {problem}");
    }
    let scheduled = loaded
        .rules
        .iter()
        .filter(|rule| matches!(rule.kind, isms_detect::KindConfig::Scheduled(_)))
        .count();
    if scheduled > 0 {
        eprintln!(
            "  note: {scheduled} scheduled rules are not run: they search the store of isms serve on their schedule"
        );
    }
    if loaded.rules.len() == disabled {
        anyhow::bail!("no rule to run");
    }
    Ok(loaded)
}

/// Most events held to put the files' events in time order, over all files.
const REORDER_EVENTS: usize = 65_536;

/// Most bytes of detections printed by the workers held to put the files' events in time order,
/// over all files: with many rules, one event's detections take kilobytes (1,000 rules, 27
/// detections an event: a window of 65,536 events held 900 MiB).
const REORDER_PRINTED_BYTES: usize = 32 * 1024 * 1024;

/// How much of a file is held to put its events in time order (its share of the bounds above).
#[derive(Clone, Copy)]
struct ReorderBound {
    events: usize,
    printed_bytes: usize,
}

/// How far back in event time an event may come after later ones in its file and still be put
/// in its place: events older than this behind the newest one read are passed on (a few minutes of
/// clock skew between the hosts of one log; holding a count of events instead kept a quarter of a
/// million whole events in memory for files read in order).
const REORDER_WINDOW_MICROS: i64 = 5 * 60 * 1_000_000;

/// Most threads decoding lines, over all files.
const MAX_DECODING_THREADS: usize = 4;

/// Events sent from a file's reading thread at a time.
const BATCH_EVENTS: usize = 1024;

/// Bytes of printed detections past which a file's reading thread sends its batch.
const BATCH_PRINTED_BYTES: usize = 1024 * 1024;

/// Batches a file's reading thread may have ready before it waits for the merge.
const BATCHES_AHEAD: usize = 8;

/// What is reported from every file's reading thread.
#[derive(Default)]
struct ReadCounts {
    /// Lines or records that could not be read.
    unreadable: std::sync::atomic::AtomicU64,
    /// Events that came later in their file than the reordering bound allows for their time.
    out_of_order: std::sync::atomic::AtomicU64,
    /// Events no rule could match, left out as they were read, and events a worker's engine ran
    /// that caused nothing.
    ruled_out: std::sync::atomic::AtomicU64,
    /// Detections the workers' engines did not feed back (chain depth limit).
    chain_stops: std::sync::atomic::AtomicU64,
}

/// What the replay's rules let the reading side do ahead of detection.
#[derive(Default)]
struct ReadAhead<'engine> {
    /// Rules out the incoming events no rule can match (only match rules).
    prefilter: Option<std::sync::Arc<isms_detect::EventPrefilter>>,
    /// The replay's engine, when the workers may run copies of it (no `|expand` list to follow).
    shared_engine: Option<&'engine Engine>,
    /// With rules that keep no state: the engine the workers decoding JSON lines copy to run
    /// their events themselves, made when the first file of JSON lines opens.
    worker_engine: std::sync::OnceLock<Option<std::sync::Arc<Engine>>>,
    /// How the workers print the detections they make (`--json`).
    print_json: bool,
}

impl ReadAhead<'_> {
    /// The engine the workers copy, when the rules keep no state.
    fn worker_engine(&self) -> Option<std::sync::Arc<Engine>> {
        let engine = self.shared_engine?;
        self.worker_engine
            .get_or_init(|| engine.stateless_copy().map(std::sync::Arc::new))
            .clone()
    }
}

/// A file's next item in time order: an event for the engine, or what a worker's engine made
/// of one (rules without state).
enum Replayed {
    Event(Event),
    Detected(lines::PrintedDetections),
}

/// How many of `detections` fired and how many cleared.
fn fired_and_cleared(detections: &[Detection]) -> (u64, u64) {
    let fired = detections
        .iter()
        .filter(|detection| detection.state == DetectionState::Fired)
        .count() as u64;
    (fired, detections.len() as u64 - fired)
}

impl Replayed {
    fn time(&self) -> i64 {
        match self {
            Replayed::Event(event) => event.utctimestamp_micros,
            Replayed::Detected(detected) => detected.time,
        }
    }

    /// Bytes of printed detections it holds.
    fn printed_bytes(&self) -> usize {
        match self {
            Replayed::Event(_) => 0,
            Replayed::Detected(detected) => detected.printed.len(),
        }
    }
}

/// The events of every file, merged in event-time order, without holding the files. Each file is
/// read, decoded, normalized and put in order on its own thread (its JSON lines decoded by worker
/// threads, see [`lines`]; lines a little out of order are put right by a bounded reordering heap),
/// so reading runs beside detection on other cores; the batches it sends are merged here by their
/// next event's time.
struct MergedEvents {
    files: Vec<FileStream>,
    counts: std::sync::Arc<ReadCounts>,
    reorder_bound: ReorderBound,
}

/// One file's sorted events as they arrive from its thread.
struct FileStream {
    receiver: std::sync::mpsc::Receiver<Result<Vec<Replayed>, String>>,
    batch: std::collections::VecDeque<Replayed>,
    /// Events detection is done with, to be dropped by the thread that made them (the allocator
    /// frees memory fastest on the thread that allocated it: a tenth of the detection thread's
    /// time went to freeing the reading thread's events).
    spent: Vec<Event>,
    give_back: std::sync::mpsc::Sender<Vec<Event>>,
    /// The thread has sent everything.
    ended: bool,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileStream {
    /// The file's next event, waiting for its thread when the batch at hand is used up.
    fn head(&mut self) -> anyhow::Result<Option<&Replayed>> {
        while self.batch.is_empty() && !self.ended {
            match self.receiver.recv() {
                Ok(Ok(batch)) => self.batch = batch.into(),
                Ok(Err(error)) => anyhow::bail!(error),
                Err(_) => {
                    self.ended = true;
                    if let Some(thread) = self.thread.take()
                        && thread.join().is_err()
                    {
                        anyhow::bail!("a file's reading thread failed");
                    }
                }
            }
        }
        Ok(self.batch.front())
    }
}

/// An event with its time and its place in its file (ties keep the file's order).
struct Timed {
    time: i64,
    sequence: u64,
    event: Replayed,
}

impl PartialEq for Timed {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.sequence) == (other.time, other.sequence)
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.sequence).cmp(&(other.time, other.sequence))
    }
}

/// Events waiting to be put in time order: those read in order (nearly all) in a queue, the few
/// that came behind a later one in a heap; the oldest of the two fronts goes first. (A heap alone
/// moved every event through its levels twice.)
#[derive(Default)]
struct Reorder {
    in_order: std::collections::VecDeque<Timed>,
    behind: std::collections::BinaryHeap<std::cmp::Reverse<Timed>>,
}

impl Reorder {
    fn len(&self) -> usize {
        self.in_order.len() + self.behind.len()
    }

    fn is_empty(&self) -> bool {
        self.in_order.is_empty() && self.behind.is_empty()
    }

    fn push(&mut self, timed: Timed) {
        match self.in_order.back() {
            Some(last) if timed < *last => self.behind.push(std::cmp::Reverse(timed)),
            _ => self.in_order.push_back(timed),
        }
    }

    /// The oldest event's time.
    fn oldest_time(&self) -> Option<i64> {
        match (self.in_order.front(), self.behind.peek()) {
            (Some(first), Some(std::cmp::Reverse(straggler))) => {
                Some(first.time.min(straggler.time))
            }
            (Some(first), None) => Some(first.time),
            (None, Some(std::cmp::Reverse(straggler))) => Some(straggler.time),
            (None, None) => None,
        }
    }

    fn pop(&mut self) -> Option<Timed> {
        let from_queue = match (self.in_order.front(), self.behind.peek()) {
            (Some(first), Some(std::cmp::Reverse(straggler))) => first < straggler,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        if from_queue {
            self.in_order.pop_front()
        } else {
            self.behind.pop().map(|std::cmp::Reverse(timed)| timed)
        }
    }
}

impl MergedEvents {
    /// Opens every file (an error names the first that cannot be read) and starts its thread.
    fn open(options: &ReplayOptions, read_ahead: &ReadAhead) -> anyhow::Result<MergedEvents> {
        let counts = std::sync::Arc::new(ReadCounts::default());
        let files = options.files.len().max(1);
        let reorder_bound = ReorderBound {
            events: (REORDER_EVENTS / files).max(1024),
            printed_bytes: (REORDER_PRINTED_BYTES / files).max(4 * 1024 * 1024),
        };
        // The cores are shared out among the files for decoding their lines.
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let workers = (cores.min(MAX_DECODING_THREADS) / options.files.len().max(1)).max(1);
        let mut readers = Vec::new();
        for path in &options.files {
            readers.push(FileEvents::open(
                path, options, read_ahead, &counts, workers,
            )?);
        }
        let mut files = Vec::new();
        for reader in readers {
            let (sender, receiver) = std::sync::mpsc::sync_channel(BATCHES_AHEAD);
            let (give_back, given_back) = std::sync::mpsc::channel();
            let counts = counts.clone();
            let thread = std::thread::Builder::new()
                .name("replay-reader".into())
                .spawn(move || sort_file(reader, reorder_bound, &counts, &sender, &given_back))
                .context("cannot start a thread to read a file")?;
            files.push(FileStream {
                receiver,
                batch: std::collections::VecDeque::new(),
                spent: Vec::with_capacity(BATCH_EVENTS),
                give_back,
                ended: false,
                thread: Some(thread),
            });
        }
        Ok(MergedEvents {
            files,
            counts,
            reorder_bound,
        })
    }

    /// The next event in time order over all files, with the index of its file.
    fn next_event(&mut self) -> anyhow::Result<Option<(usize, Replayed)>> {
        let mut earliest: Option<(i64, usize)> = None;
        for index in 0..self.files.len() {
            if let Some(item) = self.files[index].head()? {
                let time = item.time();
                if earliest.is_none_or(|(earliest_time, _)| time < earliest_time) {
                    earliest = Some((time, index));
                }
            }
        }
        Ok(earliest.and_then(|(_, index)| {
            self.files[index]
                .batch
                .pop_front()
                .map(|event| (index, event))
        }))
    }

    /// Returns an event detection is done with to its file's thread, to be dropped there.
    fn give_back(&mut self, file: usize, event: Event) {
        let stream = &mut self.files[file];
        stream.spent.push(event);
        if stream.spent.len() >= BATCH_EVENTS {
            let spent = std::mem::replace(&mut stream.spent, Vec::with_capacity(BATCH_EVENTS));
            // A thread that has ended drops nothing more: the events are dropped here instead.
            let _ = stream.give_back.send(spent);
        }
    }

    fn unreadable(&self) -> u64 {
        self.counts
            .unreadable
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn out_of_order(&self) -> u64 {
        self.counts
            .out_of_order
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn ruled_out(&self) -> u64 {
        self.counts
            .ruled_out
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn chain_stops(&self) -> u64 {
        self.counts
            .chain_stops
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A file's reading thread: its events through the reordering heap, sent in batches; a read error
/// is sent as the last message. Stops early when the merge is gone.
fn sort_file(
    mut reader: FileEvents,
    reorder_bound: ReorderBound,
    counts: &ReadCounts,
    sender: &std::sync::mpsc::SyncSender<Result<Vec<Replayed>, String>>,
    given_back: &std::sync::mpsc::Receiver<Vec<Event>>,
) {
    let mut waiting = Reorder::default();
    let mut sequence = 0u64;
    let mut given = i64::MIN;
    let mut newest = i64::MIN;
    // Bytes of printed detections waiting, and in the batch.
    let mut waiting_bytes = 0usize;
    let mut batch_bytes = 0usize;
    let mut batch = Vec::with_capacity(BATCH_EVENTS);
    let send = |batch: &mut Vec<Replayed>, reader: &FileEvents| -> bool {
        while let Ok(spent) = given_back.try_recv() {
            reader.drop_spent(spent);
        }
        let full = std::mem::replace(batch, Vec::with_capacity(BATCH_EVENTS));
        sender.send(Ok(full)).is_ok()
    };
    loop {
        let next = match reader.next_event(counts) {
            Ok(next) => next,
            Err(error) => {
                let _ = sender.send(Err(format!("{error:#}")));
                return;
            }
        };
        let ended = next.is_none();
        if let Some(item) = next {
            sequence += 1;
            let time = item.time();
            newest = newest.max(time);
            waiting_bytes += item.printed_bytes();
            waiting.push(Timed {
                time,
                sequence,
                event: item,
            });
        }
        let settled = newest.saturating_sub(REORDER_WINDOW_MICROS);
        while waiting.len() >= reorder_bound.events
            || waiting_bytes > reorder_bound.printed_bytes
            || (ended && !waiting.is_empty())
            || waiting.oldest_time().is_some_and(|oldest| oldest < settled)
        {
            let Some(timed) = waiting.pop() else {
                break;
            };
            if timed.time < given {
                counts
                    .out_of_order
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            given = given.max(timed.time);
            let bytes = timed.event.printed_bytes();
            waiting_bytes -= bytes;
            batch_bytes += bytes;
            batch.push(timed.event);
            if batch.len() >= BATCH_EVENTS || batch_bytes >= BATCH_PRINTED_BYTES {
                batch_bytes = 0;
                if !send(&mut batch, &reader) {
                    return;
                }
            }
        }
        if ended {
            if !batch.is_empty() {
                send(&mut batch, &reader);
            }
            return;
        }
    }
}

/// Where a raw event came from in its file, for the report when it cannot be read.
#[derive(Clone, Copy)]
enum Place {
    Line(usize),
    Item,
    End,
}

/// The events of one file in the order it gives them.
struct FileEvents {
    path: PathBuf,
    delivery: isms_event::Delivery,
    source: FileSource,
    /// Events decoded and not yet normalized, with where they came from.
    pending: std::collections::VecDeque<(isms_decode::LineEvent, Place)>,
    finished: bool,
    prefilter: lines::Prefiltering,
}

enum FileSource {
    /// Log lines (syslog text, JSON lines, audit records).
    /// JSON object lines are decoded on worker threads; the others go through `decoder` in order.
    Lines {
        lines: lines::ParallelLines,
        decoder: Box<isms_decode::LineDecoder>,
    },
    /// Lines of text, read and decoded on the file's thread.
    TextLines {
        input: Box<dyn std::io::BufRead + Send>,
        decoder: Box<isms_decode::LineDecoder>,
        number: usize,
        buffer: Vec<u8>,
    },
    /// One JSON document (an array of events, or objects spread over lines), read whole.
    Items(std::collections::VecDeque<FileItem>),
}

impl FileEvents {
    fn open(
        path: &Path,
        options: &ReplayOptions,
        read_ahead: &ReadAhead,
        counts: &std::sync::Arc<ReadCounts>,
        workers: usize,
    ) -> anyhow::Result<FileEvents> {
        let received = if path == Path::new("-") {
            jiff::Timestamp::now()
        } else {
            written_at(path)
        };
        let origin = Origin {
            peer: None,
            endpoint: format!("replay:{}", path.display()),
            key_name: None,
        };
        let delivery = isms_event::Delivery::new(&origin, received);
        let decoder = || {
            line_decoder(
                options.decoders.as_deref(),
                &options.time_zone,
                received,
                options.program.clone(),
            )
        };
        let source = match file_kind(path)? {
            FileKind::Document => FileSource::Items(read_items(path)?.into()),
            FileKind::JsonLines => {
                let decoder = decoder()?;
                let setup = lines::WorkerSetup {
                    json_lines: decoder.json_lines(),
                    delivery: delivery.clone(),
                    prefilter: read_ahead.prefilter.clone(),
                    engine: read_ahead.worker_engine(),
                    print_json: read_ahead.print_json,
                    counts: counts.clone(),
                };
                FileSource::Lines {
                    lines: lines::ParallelLines::start(open_input(path)?, setup, workers)?,
                    decoder: Box::new(decoder),
                }
            }
            FileKind::TextLines => FileSource::TextLines {
                input: open_input(path)?,
                decoder: Box::new(decoder()?),
                number: 0,
                buffer: Vec::new(),
            },
        };
        Ok(FileEvents {
            path: path.to_path_buf(),
            delivery,
            source,
            pending: std::collections::VecDeque::new(),
            finished: false,
            prefilter: lines::Prefiltering::new(read_ahead.prefilter.clone()),
        })
    }

    /// Drops events detection is done with: JSON lines' events on the threads that built them
    /// (the allocator frees fastest on the thread that allocated), the others here.
    fn drop_spent(&self, spent: Vec<Event>) {
        match &self.source {
            FileSource::Lines { lines, .. } => lines.drop_spent(spent),
            FileSource::Items(_) | FileSource::TextLines { .. } => drop(spent),
        }
    }

    fn place_text(&self, place: Place) -> String {
        match place {
            Place::Line(number) => format!("{}:{number}", self.path.display()),
            Place::Item => format!("{}: item", self.path.display()),
            Place::End => format!("{}: end", self.path.display()),
        }
    }

    /// The next event, reporting (and counting in `counts`) what cannot be read on the way.
    fn next_event(&mut self, counts: &ReadCounts) -> anyhow::Result<Option<Replayed>> {
        loop {
            if let Some((line_event, place)) = self.pending.pop_front() {
                if let isms_decode::LineEvent::Raw(raw) = &line_event
                    && !self.prefilter.judge_raw(raw, counts)
                {
                    continue;
                }
                match line_event.into_event(&self.delivery) {
                    Ok(event) => return Ok(Some(Replayed::Event(event))),
                    Err(error) => report(counts, self.place_text(place), error.to_string()),
                }
                continue;
            }
            if self.finished {
                return Ok(None);
            }
            match &mut self.source {
                FileSource::Items(items) => match items.pop_front() {
                    Some(FileItem::Event(raw)) => {
                        self.pending
                            .push_back((isms_decode::LineEvent::Raw(raw), Place::Item));
                    }
                    Some(FileItem::Unreadable { place, reason }) => report(counts, place, reason),
                    None => self.finished = true,
                },
                FileSource::Lines { lines, decoder } => match lines.next()? {
                    None => {
                        self.pending.extend(held_at_the_end(decoder));
                        self.finished = true;
                    }
                    // A JSON object line, built on a worker thread.
                    Some(lines::LineOutcome::Event(event)) => {
                        return Ok(Some(Replayed::Event(event)));
                    }
                    Some(lines::LineOutcome::Detected(detected)) => {
                        return Ok(Some(Replayed::Detected(detected)));
                    }
                    Some(lines::LineOutcome::Text { number, text }) => self.pending.extend(
                        decoder
                            .push_line_typed(&text)
                            .into_iter()
                            .map(|line_event| (line_event, Place::Line(number))),
                    ),
                    Some(lines::LineOutcome::Unreadable { number, reason }) => {
                        report(counts, self.place_text(Place::Line(number)), reason)
                    }
                },
                FileSource::TextLines {
                    input,
                    decoder,
                    number,
                    buffer,
                } => match read_bounded_line(input, buffer)? {
                    None => {
                        self.pending.extend(held_at_the_end(decoder));
                        self.finished = true;
                    }
                    Some(Ok(text)) => {
                        *number += 1;
                        let place = Place::Line(*number);
                        // A JSON line among text lines, which no rule can match, is skipped
                        // before it is decoded.
                        if isms_decode::json_object_text(&text).is_some_and(|object_text| {
                            self.prefilter.judge_line(object_text, counts) == Some(false)
                        }) {
                            continue;
                        }
                        self.pending.extend(
                            decoder
                                .push_line_typed(&text)
                                .into_iter()
                                .map(|line_event| (line_event, place)),
                        );
                    }
                    Some(Err(reason)) => {
                        *number += 1;
                        let line = *number;
                        report(counts, self.place_text(Place::Line(line)), reason)
                    }
                },
            }
        }
    }
}

/// The events a file's decoder still holds when its lines end (audit events waiting for more
/// records).
fn held_at_the_end(
    decoder: &mut isms_decode::LineDecoder,
) -> impl Iterator<Item = (isms_decode::LineEvent, Place)> {
    decoder
        .finish()
        .into_iter()
        .map(|raw| (isms_decode::LineEvent::Raw(raw), Place::End))
}

/// Reports a line or record that cannot be read: the first 20 in full, then only counted.
fn report(counts: &ReadCounts, place: String, reason: String) {
    let before = counts
        .unreadable
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if before < 20 {
        eprintln!("{place}: {reason}");
    } else if before == 20 {
        eprintln!("(further unreadable lines are only counted)");
    }
}

/// Longest line read; longer ones are reported and skipped.
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// The next line (lossy UTF-8, borrowed from `buffer` when it is valid), `Err` for one too long
/// (skipped), `None` at the end.
fn read_bounded_line<'buffer>(
    input: &mut Box<dyn std::io::BufRead + Send>,
    buffer: &'buffer mut Vec<u8>,
) -> anyhow::Result<Option<Result<std::borrow::Cow<'buffer, str>, String>>> {
    use std::io::{BufRead, Read};
    buffer.clear();
    let read = (&mut **input)
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', buffer)?;
    if read == 0 {
        return Ok(None);
    }
    if buffer.len() > MAX_LINE_BYTES && buffer.last() != Some(&b'\n') {
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let skipped = (&mut **input)
                .take(64 * 1024)
                .read_until(b'\n', &mut rest)?;
            if skipped == 0 || rest.last() == Some(&b'\n') {
                break;
            }
        }
        return Ok(Some(Err(format!(
            "line longer than {MAX_LINE_BYTES} bytes"
        ))));
    }
    // Valid UTF-8 (nearly every line) is checked far faster than the lossy reading finds it so.
    Ok(Some(Ok(match std::str::from_utf8(buffer) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(buffer),
    })))
}

/// What a file holds, judged by its first non-blank line.
#[derive(Debug, PartialEq, Eq)]
enum FileKind {
    /// One JSON document (an array of events, or an object spread over lines): its first
    /// non-blank byte is `[`, or `{` on a first line that is not JSON by itself.
    Document,
    /// Lines, the first a JSON object: decoded on worker threads.
    JsonLines,
    /// Lines of text (syslog, audit): decoded in order on the file's thread. (Workers would only
    /// pass them on, and free on their threads what this one built.)
    TextLines,
}

fn file_kind(path: &Path) -> anyhow::Result<FileKind> {
    if path == Path::new("-") {
        // Standard input cannot be looked at twice; the workers handle text lines too.
        return Ok(FileKind::JsonLines);
    }
    let mut input = open_input(path)?;
    let mut buffer = Vec::new();
    // Lines are read bounded: a document on one long line is a document, not a line too long.
    loop {
        match read_bounded_line(&mut input, &mut buffer)? {
            None => return Ok(FileKind::TextLines),
            Some(Err(_)) => {
                let first = buffer.iter().find(|byte| !byte.is_ascii_whitespace());
                return Ok(if matches!(first, Some(b'[' | b'{')) {
                    FileKind::Document
                } else {
                    FileKind::TextLines
                });
            }
            Some(Ok(line)) if line.trim().is_empty() => continue,
            Some(Ok(line)) => {
                let trimmed = line.trim();
                return Ok(if trimmed.starts_with('[') {
                    FileKind::Document
                } else if trimmed.starts_with('{') {
                    match serde_json::from_str::<Value>(trimmed) {
                        Ok(Value::Object(_)) => FileKind::JsonLines,
                        _ => FileKind::Document,
                    }
                } else {
                    FileKind::TextLines
                });
            }
        }
    }
}

/// An event time to the second, for the table: `2026-02-25T14:34:11Z`.
fn table_time(micros: i64) -> String {
    match jiff::Timestamp::from_microsecond(micros - micros.rem_euclid(1_000_000)) {
        Ok(time) => time.to_string(),
        Err(_) => isms_event::format_time(micros),
    }
}

/// Detections handed to the printing thread at a time (at least: an event's go together).
const PRINT_BATCH: usize = 1024;

/// An event's detections for the printing thread: made by the replay's engine, or already
/// printed by the worker whose engine made them.
enum Printable {
    Made(Vec<Detection>),
    Printed(Vec<u8>),
}

/// The thread that writes detections to standard output, in the order they were made; batches
/// wait in a bounded channel, so a slow reader of the output slows the replay instead of filling
/// memory.
struct DetectionPrinter {
    batches: std::sync::mpsc::SyncSender<Vec<Printable>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl DetectionPrinter {
    fn start(json: bool) -> DetectionPrinter {
        let (batches, received) = std::sync::mpsc::sync_channel::<Vec<Printable>>(8);
        let thread = std::thread::Builder::new()
            .name("replay-printer".to_owned())
            .spawn(move || -> anyhow::Result<()> {
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                let mut header_written = json;
                // A batch is written into memory, then out in one piece (the JSON writer's many
                // small writes cost less into a plain buffer).
                let mut text = Vec::with_capacity(512 * 1024);
                for batch in received {
                    text.clear();
                    for printable in &batch {
                        if !header_written {
                            write_table_header(&mut text)?;
                            header_written = true;
                        }
                        match printable {
                            Printable::Made(detections) => {
                                for detection in detections {
                                    write_detection(detection, json, &mut text)?;
                                }
                            }
                            Printable::Printed(printed) => text.extend_from_slice(printed),
                        }
                    }
                    out.write_all(&text)?;
                }
                out.flush()?;
                Ok(())
            })
            .expect("a thread can be started");
        DetectionPrinter {
            batches,
            thread: Some(thread),
        }
    }

    fn print(&mut self, batch: Vec<Printable>) -> anyhow::Result<()> {
        if batch.is_empty() || self.batches.send(batch).is_ok() {
            return Ok(());
        }
        // The thread stopped: its error says why.
        self.join()?;
        anyhow::bail!("detections could not be written")
    }

    fn finish(mut self) -> anyhow::Result<()> {
        let (closed, _) = std::sync::mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.batches, closed));
        self.join()
    }

    fn join(&mut self) -> anyhow::Result<()> {
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow::anyhow!("the printing thread panicked"))?,
            None => Ok(()),
        }
    }
}

/// The table's header, written before its first detection.
fn write_table_header(out: &mut Vec<u8>) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<20} {:<8} {:<9} {:<38} {:>6}  {:<40} MESSAGE",
        "TIME", "STATE", "SEVERITY", "RULE", "COUNT", "GROUP"
    )
}

/// One detection as a JSON line, or as a line of the table (what came from events made safe for
/// a terminal).
fn write_detection(detection: &Detection, json: bool, out: &mut Vec<u8>) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, detection)?;
        out.push(b'\n');
        return Ok(());
    }
    writeln!(
        out,
        "{:<20} {:<8} {:<9} {:<38} {:>6}  {:<40} {}",
        table_time(detection.detected_micros),
        detection.state.name(),
        detection.severity,
        terminal_safe(&detection.rule_id),
        detection.count,
        terminal_safe(&detection.group_text()),
        terminal_safe(&detection.message),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reorder_gives_events_back_by_time_then_by_reading_order() {
        let origin = Origin {
            peer: None,
            endpoint: "test".to_owned(),
            key_name: None,
        };
        let received = jiff::Timestamp::UNIX_EPOCH;
        let event =
            isms_event::normalize(serde_json::json!({"summary": "x"}), &origin, received).unwrap();
        // Mostly in order, with stragglers and ties (a fixed pseudo-random walk).
        let mut state = 12345u64;
        let mut times = Vec::new();
        let mut time = 1000i64;
        for _ in 0..2000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let step = (state >> 33) % 10;
            time += match step {
                0 => -50,
                1 | 2 => 0,
                _ => step as i64,
            };
            times.push(time);
        }
        let mut reorder = Reorder::default();
        let mut given = Vec::new();
        for (sequence, &time) in times.iter().enumerate() {
            reorder.push(Timed {
                time,
                sequence: sequence as u64,
                event: Replayed::Event(event.clone()),
            });
            // Give some back as it goes, as the reading thread does past its bound.
            if reorder.len() > 64 {
                let oldest = reorder.oldest_time();
                let timed = reorder.pop().unwrap();
                assert_eq!(Some(timed.time), oldest);
                given.push((timed.time, timed.sequence));
            }
        }
        while let Some(timed) = reorder.pop() {
            given.push((timed.time, timed.sequence));
        }
        assert!(reorder.is_empty());
        assert_eq!(given.len(), times.len());
        // Within what the bound allows, the order is by time, ties by reading order: what a heap of
        // everything gives when each pop takes its minimum.
        let mut heap = std::collections::BinaryHeap::new();
        let mut expected = Vec::new();
        for (sequence, &time) in times.iter().enumerate() {
            heap.push(std::cmp::Reverse((time, sequence as u64)));
            if heap.len() > 64 {
                expected.push(heap.pop().unwrap().0);
            }
        }
        while let Some(std::cmp::Reverse(item)) = heap.pop() {
            expected.push(item);
        }
        assert_eq!(given, expected);
    }
}
