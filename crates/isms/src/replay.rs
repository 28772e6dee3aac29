//! `isms replay`: the detection engine offline, over log files, in event-time order.
//!
//! How users test rules before they deploy them and how they look back at what happened (forensics):
//! the same engine as `isms serve`, the same decoders as `isms decode`, so what a replay shows is
//! what the server would have raised. Files are syslog text, JSON lines (MozDef events or records
//! such as Suricata's), or MozDef JSON (an object or an array). Their events are sorted by event
//! time (files of one host rotated into several, or several hosts' logs, interleave), then run.
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
    FileItem, for_each_line, line_decoder, open_input, progress_bar, read_items, terminal_safe,
    written_at,
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
    let started = Instant::now();
    let (mut events, unreadable) = read_events(&options)?;
    let read_seconds = started.elapsed().as_secs_f64();
    // Stable: events of one time keep the order of the input.
    events.sort_by_key(|event| event.utctimestamp_micros);

    let rule_count = loaded.rules.len();
    let mut engine = Engine::new(
        loaded.rules,
        lists,
        EngineOptions {
            // Sorted: nothing arrives late.
            allowed_lateness_micros: 0,
            max_chain_depth: options.max_chain_depth,
        },
    );
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printer = Printer::new(options.json);
    let bar = progress_bar(
        events.len() as u64,
        "{msg} [{bar:40}] {pos}/{len} events ({per_sec}, {eta})",
        "replaying".to_owned(),
    );
    let detect_started = Instant::now();
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
    for (index, event) in events.iter().enumerate() {
        print(engine.process(event), &mut out)?;
        if index % 4096 == 0 {
            bar.set_position(index as u64);
        }
    }
    print(engine.finish(), &mut out)?;
    bar.finish_and_clear();
    out.flush()?;
    let detect_seconds = detect_started.elapsed().as_secs_f64();
    let statistics = engine.statistics();
    eprintln!(
        "replayed {} events ({} lines or records not readable) through {rule_count} rules: {fired} fired, {cleared} cleared; read in {read_seconds:.2} s, detection in {detect_seconds:.2} s ({:.0} events/s){}{}",
        events.len(),
        unreadable,
        events.len() as f64 / detect_seconds.max(1e-9),
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
    if loaded.rules.len() == disabled {
        anyhow::bail!("no rule to run");
    }
    Ok(loaded)
}

/// Reads every file into normalized events; returns them (in input order) and how many lines or
/// records could not be read (each reported on stderr, the first 20 of them in full).
fn read_events(options: &ReplayOptions) -> anyhow::Result<(Vec<Event>, u64)> {
    let mut events = Vec::new();
    let mut unreadable = 0u64;
    let mut report = |place: String, reason: String| {
        unreadable += 1;
        if unreadable <= 20 {
            eprintln!("{place}: {reason}");
        } else if unreadable == 21 {
            eprintln!("(further unreadable lines are only counted)");
        }
    };
    for path in &options.files {
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
        let mut keep =
            |raw: Value, place: &dyn Fn() -> String, report: &mut dyn FnMut(String, String)| {
                match isms_event::normalize_delivered(raw, &delivery) {
                    Ok(event) => events.push(event),
                    Err(error) => report(place(), error.to_string()),
                }
            };
        if is_json_document(path)? {
            for (index, item) in read_items(path)?.into_iter().enumerate() {
                match item {
                    FileItem::Event(raw) => keep(
                        raw,
                        &|| format!("{}: item {}", path.display(), index + 1),
                        &mut report,
                    ),
                    FileItem::Unreadable { place, reason } => report(place, reason),
                }
            }
            continue;
        }
        let mut decoder = line_decoder(
            options.decoders.as_deref(),
            &options.time_zone,
            received,
            options.program.clone(),
        )?;
        for_each_line(open_input(path)?, |number, line| {
            match line {
                Ok(line) => {
                    for raw in decoder.push_line(line) {
                        keep(raw, &|| format!("{}:{number}", path.display()), &mut report);
                    }
                }
                Err(reason) => report(format!("{}:{number}", path.display()), reason),
            }
            Ok(())
        })?;
        for raw in decoder.finish() {
            keep(raw, &|| format!("{}: end", path.display()), &mut report);
        }
    }
    Ok((events, unreadable))
}

/// Whether a file is one JSON document (an array of events, or an object spread over lines) rather
/// than lines: its first non-blank byte is `[`, or `{` on a first line that is not JSON by itself.
fn is_json_document(path: &Path) -> anyhow::Result<bool> {
    if path == Path::new("-") {
        return Ok(false);
    }
    use std::io::BufRead;
    let mut input = open_input(path)?;
    let mut first = String::new();
    loop {
        first.clear();
        if input.read_line(&mut first)? == 0 {
            return Ok(false);
        }
        if !first.trim().is_empty() {
            break;
        }
    }
    let trimmed = first.trim();
    Ok(trimmed.starts_with('[')
        || (trimmed.starts_with('{') && serde_json::from_str::<Value>(trimmed).is_err()))
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
                "{:<20} {:<8} {:<9} {:<32} {:>6}  {:<40} MESSAGE",
                "TIME", "STATE", "SEVERITY", "RULE", "COUNT", "GROUP"
            )?;
            self.header_written = true;
        }
        writeln!(
            out,
            "{:<20} {:<8} {:<9} {:<32} {:>6}  {:<40} {}",
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
