//! `isms replay`: the detection engine offline, over log files, in event-time order.
//!
//! How users test rules before they deploy them and how they look back at what happened (forensics):
//! the same engine as `isms serve`, the same decoders as `isms decode`, so what a replay shows is
//! what the server would have raised. Files are syslog text, JSON lines (MozDef events or records
//! such as Suricata's), or MozDef JSON (an object or an array). Their events are put in event-time
//! order as they are read (files of one host rotated into several, or several hosts' logs,
//! interleave): each file through a bounded reordering heap, the files merged by their next event's
//! time, so a replay of gigabytes holds a bounded number of events, not the files.
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
    /// A directory of list files (NAME.txt or NAME.list: one entry per line).
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
    let loaded = load_rules(&options)?;
    let mut lists = Lists::default();
    if let Some(directory) = &options.lists {
        let problems = lists
            .load_directory(directory)
            .with_context(|| format!("cannot read the lists directory {}", directory.display()))?;
        for problem in problems {
            eprintln!("list not loaded: {problem}");
        }
    }
    let rule_count = loaded.rules.len();
    let mut engine = Engine::new(
        loaded.rules,
        lists,
        EngineOptions {
            // Merged in event-time order: nothing arrives late (beyond the reordering bound).
            allowed_lateness_micros: 0,
            max_chain_depth: options.max_chain_depth,
        },
    );
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printer = Printer::new(options.json);
    let bar = progress_bar(0, "{msg} {pos} events ({per_sec})", "replaying".to_owned());
    let started = Instant::now();
    let mut fired = 0u64;
    let mut cleared = 0u64;
    let mut print = |detections: Vec<Detection>, out: &mut dyn Write| -> anyhow::Result<()> {
        for detection in detections {
            match detection.state {
                DetectionState::Fired => fired += 1,
                DetectionState::Cleared => cleared += 1,
            }
            printer.print(&detection, out)?;
        }
        Ok(())
    };
    let mut merged = MergedEvents::open(&options)?;
    let mut count = 0u64;
    while let Some(event) = merged.next_event()? {
        print(engine.process(&event), &mut out)?;
        count += 1;
        if count.is_multiple_of(4096) {
            bar.set_position(count);
        }
    }
    print(engine.finish(), &mut out)?;
    bar.finish_and_clear();
    out.flush()?;
    let seconds = started.elapsed().as_secs_f64();
    let statistics = engine.statistics();
    eprintln!(
        "replayed {count} events ({} lines or records not readable{}) through {rule_count} rules: {fired} fired, {cleared} cleared in {seconds:.2} s ({:.0} events/s){}{}",
        merged.unreadable,
        if merged.out_of_order > 0 {
            format!(
                "; {} came more than {} events after later ones in their file and were taken late",
                merged.out_of_order, merged.reorder_bound
            )
        } else {
            String::new()
        },
        count as f64 / seconds.max(1e-9),
        if statistics.chain_stops > 0 {
            format!(
                "; {} detections not fed back (chain depth limit)",
                statistics.chain_stops
            )
        } else {
            String::new()
        },
        if statistics.evictions > 0 {
            format!("; {} entities evicted (max_entities)", statistics.evictions)
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

/// Loads the rules asked for and prints the summary: how many loaded, and each one that did not with
/// its file, line and reason. Fails only when no rule at all can run.
fn load_rules(options: &ReplayOptions) -> anyhow::Result<LoadedRules> {
    if options.rules.is_empty() && !options.builtin {
        anyhow::bail!("no rules: give --rules DIR (several times if needed) and/or --builtin");
    }
    let mut loaded = if options.builtin {
        isms_detect::builtin::builtin_rules()
    } else {
        LoadedRules::default()
    };
    for directory in &options.rules {
        let from_directory = isms_detect::load_directory(directory)
            .with_context(|| format!("cannot read the rules directory {}", directory.display()))?;
        loaded.files += from_directory.files;
        loaded.errors.extend(from_directory.errors);
        for rule in from_directory.rules {
            isms_detect::rule::add_unique(&mut loaded, rule);
        }
    }
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
const REORDER_EVENTS: usize = 262_144;

/// The events of every file, merged in event-time order, without holding the files: each file's
/// events pass through a bounded reordering heap (lines a little out of order are put right) and the
/// files are merged by their next event's time.
struct MergedEvents {
    files: Vec<SortedFile>,
    heads: Vec<Option<Timed>>,
    /// Lines or records that could not be read.
    unreadable: u64,
    /// Events that came later in their file than the reordering bound allows for their time.
    out_of_order: u64,
    reorder_bound: usize,
}

/// An event with its time and its place in its file (ties keep the file's order).
struct Timed {
    time: i64,
    sequence: u64,
    event: Event,
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

struct SortedFile {
    reader: FileEvents,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<Timed>>,
    sequence: u64,
    /// The newest time given out so far.
    given: i64,
}

impl MergedEvents {
    fn open(options: &ReplayOptions) -> anyhow::Result<MergedEvents> {
        let mut files = Vec::new();
        for path in &options.files {
            files.push(SortedFile {
                reader: FileEvents::open(path, options)?,
                heap: std::collections::BinaryHeap::new(),
                sequence: 0,
                given: i64::MIN,
            });
        }
        let reorder_bound = (REORDER_EVENTS / files.len().max(1)).max(1024);
        let heads = files.iter().map(|_| None).collect();
        Ok(MergedEvents {
            files,
            heads,
            unreadable: 0,
            out_of_order: 0,
            reorder_bound,
        })
    }

    /// The next event in time order over all files.
    fn next_event(&mut self) -> anyhow::Result<Option<Event>> {
        for index in 0..self.files.len() {
            if self.heads[index].is_none() {
                self.heads[index] = self.next_of_file(index)?;
            }
        }
        let earliest = self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(index, head)| head.as_ref().map(|head| (head.time, index)))
            .min();
        Ok(earliest.and_then(|(_, index)| self.heads[index].take().map(|timed| timed.event)))
    }

    fn next_of_file(&mut self, index: usize) -> anyhow::Result<Option<Timed>> {
        let bound = self.reorder_bound;
        let file = &mut self.files[index];
        while file.heap.len() < bound {
            match file.reader.next_event(&mut self.unreadable)? {
                Some(event) => {
                    file.sequence += 1;
                    file.heap.push(std::cmp::Reverse(Timed {
                        time: event.utctimestamp_micros,
                        sequence: file.sequence,
                        event,
                    }));
                }
                None => break,
            }
        }
        let next = file.heap.pop().map(|std::cmp::Reverse(timed)| timed);
        if let Some(timed) = &next {
            if timed.time < file.given {
                self.out_of_order += 1;
            }
            file.given = file.given.max(timed.time);
        }
        Ok(next)
    }
}

/// The events of one file in the order it gives them.
struct FileEvents {
    path: PathBuf,
    delivery: isms_event::Delivery,
    source: FileSource,
    /// Raw events decoded and not yet normalized, with where they came from.
    pending: std::collections::VecDeque<(Value, String)>,
    finished: bool,
}

enum FileSource {
    /// Log lines (syslog text, JSON lines, audit records).
    Lines {
        input: Box<dyn std::io::BufRead>,
        decoder: Box<isms_decode::LineDecoder>,
        number: usize,
        buffer: Vec<u8>,
    },
    /// One JSON document (an array of events, or objects spread over lines), read whole.
    Items(std::collections::VecDeque<FileItem>),
}

impl FileEvents {
    fn open(path: &Path, options: &ReplayOptions) -> anyhow::Result<FileEvents> {
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
        let source = if is_json_document(path)? {
            FileSource::Items(read_items(path)?.into())
        } else {
            FileSource::Lines {
                input: open_input(path)?,
                decoder: Box::new(line_decoder(
                    options.decoders.as_deref(),
                    &options.time_zone,
                    received,
                    options.program.clone(),
                )?),
                number: 0,
                buffer: Vec::new(),
            }
        };
        Ok(FileEvents {
            path: path.to_path_buf(),
            delivery: isms_event::Delivery::new(&origin, received),
            source,
            pending: std::collections::VecDeque::new(),
            finished: false,
        })
    }

    /// The next event, reporting (and counting in `unreadable`) what cannot be read on the way.
    fn next_event(&mut self, unreadable: &mut u64) -> anyhow::Result<Option<Event>> {
        loop {
            if let Some((raw, place)) = self.pending.pop_front() {
                match isms_event::normalize_delivered(raw, &self.delivery) {
                    Ok(event) => return Ok(Some(event)),
                    Err(error) => report(unreadable, place, error.to_string()),
                }
                continue;
            }
            if self.finished {
                return Ok(None);
            }
            match &mut self.source {
                FileSource::Items(items) => match items.pop_front() {
                    Some(FileItem::Event(raw)) => {
                        let place = format!("{}: item", self.path.display());
                        self.pending.push_back((raw, place));
                    }
                    Some(FileItem::Unreadable { place, reason }) => {
                        report(unreadable, place, reason)
                    }
                    None => self.finished = true,
                },
                FileSource::Lines {
                    input,
                    decoder,
                    number,
                    buffer,
                } => match read_bounded_line(input, buffer)? {
                    None => {
                        let place = format!("{}: end", self.path.display());
                        self.pending
                            .extend(decoder.finish().into_iter().map(|raw| (raw, place.clone())));
                        self.finished = true;
                    }
                    Some(line) => {
                        *number += 1;
                        let place = format!("{}:{number}", self.path.display());
                        match line {
                            Ok(text) => self.pending.extend(
                                decoder
                                    .push_line(&text)
                                    .into_iter()
                                    .map(|raw| (raw, place.clone())),
                            ),
                            Err(reason) => report(unreadable, place, reason),
                        }
                    }
                },
            }
        }
    }
}

/// Reports a line or record that cannot be read: the first 20 in full, then only counted.
fn report(unreadable: &mut u64, place: String, reason: String) {
    *unreadable += 1;
    if *unreadable <= 20 {
        eprintln!("{place}: {reason}");
    } else if *unreadable == 21 {
        eprintln!("(further unreadable lines are only counted)");
    }
}

/// Longest line read; longer ones are reported and skipped.
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// The next line (lossy UTF-8), `Err` for one too long (skipped), `None` at the end.
fn read_bounded_line(
    input: &mut Box<dyn std::io::BufRead>,
    buffer: &mut Vec<u8>,
) -> anyhow::Result<Option<Result<String, String>>> {
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
    Ok(Some(Ok(String::from_utf8_lossy(buffer).into_owned())))
}

/// Whether a file is one JSON document (an array of events, or an object spread over lines) rather
/// than lines: its first non-blank byte is `[`, or `{` on a first line that is not JSON by itself.
fn is_json_document(path: &Path) -> anyhow::Result<bool> {
    if path == Path::new("-") {
        return Ok(false);
    }
    let mut input = open_input(path)?;
    let mut buffer = Vec::new();
    // Lines are read bounded: a document on one long line is a document, not a line too long.
    loop {
        match read_bounded_line(&mut input, &mut buffer)? {
            None => return Ok(false),
            Some(Err(_)) => {
                let first = buffer.iter().find(|byte| !byte.is_ascii_whitespace());
                return Ok(matches!(first, Some(b'[' | b'{')));
            }
            Some(Ok(line)) if line.trim().is_empty() => continue,
            Some(Ok(line)) => {
                let trimmed = line.trim();
                return Ok(trimmed.starts_with('[')
                    || (trimmed.starts_with('{')
                        && serde_json::from_str::<Value>(trimmed).is_err()));
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

/// Prints detections as a table (header once) or JSON lines.
struct Printer {
    json: bool,
    header_written: bool,
}

impl Printer {
    fn new(json: bool) -> Printer {
        Printer {
            json,
            header_written: false,
        }
    }

    fn print(&mut self, detection: &Detection, out: &mut dyn Write) -> anyhow::Result<()> {
        if self.json {
            serde_json::to_writer(&mut *out, detection)?;
            out.write_all(b"\n")?;
            return Ok(());
        }
        if !self.header_written {
            writeln!(
                out,
                "{:<20} {:<8} {:<9} {:<38} {:>6}  {:<40} MESSAGE",
                "TIME", "STATE", "SEVERITY", "RULE", "COUNT", "GROUP"
            )?;
            self.header_written = true;
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
}
