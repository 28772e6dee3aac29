//! `isms-loadgen detect`: detection throughput and memory, in process and through `isms replay`.
//!
//! Generates a day of sshd syslog lines (fixed seed: failures, invalid users, successes, sessions,
//! with brute-force bursts from a few sources) and a rule set of match and threshold rules, then:
//!
//! 1. decodes the lines into events (timed apart: that is the decoders' number, not detection's);
//! 2. runs every event through the engine on this one thread and reports events per second;
//! 3. with `--isms BINARY`, times `isms replay --rules DIR FILE --json` end to end (reading,
//!    decoding, sorting and detection) over the same files;
//! 4. with `--entities N`, tracks N distinct users in one threshold rule and reports the resident
//!    memory they take, per entity.
//!
//! The lines and rules are written to `--out` (a temporary directory otherwise), so peers (sec,
//! fail2ban-regex) can be run on the very same input.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use isms_detect::{Engine, EngineOptions, Lists};
use isms_event::{Event, Origin};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// sshd lines to generate.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// Rules: two that watch every login (5 failures per user, more than 5 per source, in 5
    /// minutes), the rest half threshold, half match, each on a slice of the hosts or users.
    #[arg(long, default_value_t = 500)]
    rules: usize,
    /// Directory for the generated `auth.log` and `rules/` (kept); a temporary one when left out.
    #[arg(long)]
    out: Option<PathBuf>,
    /// An `isms` binary: also time `isms replay` over the same files.
    #[arg(long)]
    isms: Option<PathBuf>,
    /// Also measure the memory of this many tracked entities (0: skip).
    #[arg(long, default_value_t = 0)]
    entities: u64,
}

const HOSTS: usize = 50;
const USERS: usize = 5_000;
const SOURCES: usize = 20_000;

pub fn run(args: DetectArgs) -> anyhow::Result<()> {
    let temporary;
    let out = match &args.out {
        Some(out) => {
            std::fs::create_dir_all(out)?;
            out.clone()
        }
        None => {
            temporary = tempfile::tempdir()?;
            temporary.path().to_path_buf()
        }
    };
    let log = out.join("auth.log");
    let rules_dir = out.join("rules");
    write_lines(&log, args.lines)?;
    write_rules(&rules_dir, args.rules)?;
    println!(
        "detect: {} sshd lines in {}, {} rules in {}",
        args.lines,
        log.display(),
        args.rules,
        rules_dir.display()
    );

    let loaded = isms_detect::load_directory(&rules_dir)?;
    anyhow::ensure!(
        loaded.errors.is_empty(),
        "generated rules did not load: {:?}",
        loaded.errors
    );
    let decode_started = Instant::now();
    let events = decode(&log)?;
    let decode_seconds = decode_started.elapsed().as_secs_f64();
    println!(
        "detect: decoded {} events in {decode_seconds:.2} s ({:.0} lines/s, not part of detection's number)",
        events.len(),
        events.len() as f64 / decode_seconds
    );

    let mut engine = Engine::new(
        loaded.rules,
        Lists::default(),
        EngineOptions {
            allowed_lateness_micros: 0,
            max_chain_depth: 5,
        },
    );
    let started = Instant::now();
    let mut fired = 0u64;
    let mut cleared = 0u64;
    for event in &events {
        for detection in engine.process(event) {
            match detection.state {
                isms_detect::DetectionState::Fired => fired += 1,
                isms_detect::DetectionState::Cleared => cleared += 1,
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let statuses = engine.statuses();
    let tracked: usize = statuses.iter().map(|status| status.tracked).sum();
    println!(
        "detect-result mode=in-process events={} rules={} seconds={seconds:.3} events_per_second={:.0} fired={fired} cleared={cleared} tracked_entities={tracked}",
        events.len(),
        args.rules,
        events.len() as f64 / seconds
    );
    drop(events);
    drop(engine);

    if let Some(isms) = &args.isms {
        let started = Instant::now();
        let output = std::process::Command::new(isms)
            .arg("replay")
            .arg("--rules")
            .arg(&rules_dir)
            .arg("--json")
            .arg(&log)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .output()
            .with_context(|| format!("cannot run {}", isms.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            output.status.code() == Some(0) || output.status.code() == Some(1),
            "isms replay failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let detections = output.stdout.iter().filter(|&&byte| byte == b'\n').count();
        println!(
            "detect-result mode=replay events={} rules={} seconds={seconds:.3} events_per_second={:.0} detections={detections}",
            args.lines,
            args.rules,
            args.lines as f64 / seconds
        );
        print!("{}", String::from_utf8_lossy(&output.stderr));
    }

    if args.entities > 0 {
        measure_entities(args.entities)?;
    }
    Ok(())
}

/// One day of sshd lines from `HOSTS` hosts, in time order; a few sources brute-force.
fn write_lines(path: &Path, lines: u64) -> anyhow::Result<()> {
    let mut random = StdRng::seed_from_u64(42);
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let seconds_per_line = 86_400.0 / lines.max(1) as f64;
    let months = ["Jun"];
    for index in 0..lines {
        let second = (index as f64 * seconds_per_line) as u64;
        let (hour, minute, second) = (second / 3600, second / 60 % 60, second % 60);
        let host = random.random_range(0..HOSTS);
        let pid = random.random_range(1000..60000);
        // Three lines in ten come from one of a hundred attacking sources: failures, few user names.
        let attacker = random.random_bool(0.3);
        let source = if attacker {
            format!("203.0.113.{}", random.random_range(0..100))
        } else {
            let number = random.random_range(0..SOURCES);
            format!(
                "10.{}.{}.{}",
                number / 65536,
                number / 256 % 256,
                number % 256
            )
        };
        let user = if attacker {
            ["root", "admin", "oracle", "test", "ubuntu"][random.random_range(0..5)].to_owned()
        } else {
            format!("user{}", random.random_range(0..USERS))
        };
        let port = random.random_range(1024..65535);
        let text = match (attacker, random.random_range(0..10)) {
            (true, 0) => format!("Invalid user {user} from {source} port {port}"),
            (true, _) => format!("Failed password for {user} from {source} port {port} ssh2"),
            (false, 0) => format!("Failed password for {user} from {source} port {port} ssh2"),
            (false, 1) => format!(
                "pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)"
            ),
            (false, 2) => format!("Disconnected from user {user} {source} port {port}"),
            (false, _) => format!(
                "Accepted publickey for {user} from {source} port {port} ssh2: RSA SHA256:abcdefghijklmnop"
            ),
        };
        writeln!(
            writer,
            "{} {:>2} {hour:02}:{minute:02}:{second:02} web{host} sshd[{pid}]: {text}",
            months[0], 1
        )?;
    }
    writer.flush()?;
    Ok(())
}

/// The rule set: the two rules every login goes through, then threshold and match rules on slices.
fn write_rules(directory: &Path, count: usize) -> anyhow::Result<()> {
    if directory.exists() {
        std::fs::remove_dir_all(directory)?;
    }
    std::fs::create_dir_all(directory)?;
    let mut text = String::from(
        "id: failures-per-user
title: Five failed logins for one user in five minutes
kind: threshold
match: 'category:authentication AND details.action:login AND details.result:failure'
parameters: {group_by: [details.username], interval: 5m, threshold: 5}
message: '{count} failed logins for {details.username}'
---
id: failures-per-source
title: More than five failed logins from one source in five minutes
kind: threshold
match: 'category:authentication AND details.action:login AND details.result:failure'
parameters: {group_by: [details.sourceipaddress], interval: 5m, compare: gt, threshold: 5}
message: '{count} failed logins from {details.sourceipaddress}'
",
    );
    for index in 2..count {
        let host = index % HOSTS;
        text.push_str("---\n");
        if index % 2 == 0 {
            let threshold = 3 + index % 20;
            let group = if index % 4 == 0 {
                "details.username"
            } else {
                "details.sourceipaddress"
            };
            text.push_str(&format!(
                "id: threshold-{index}
title: Failures on web{host} by {group}
kind: threshold
match: 'hostname:web{host} AND details.result:failure'
parameters: {{group_by: [{group}], interval: {}m, threshold: {threshold}}}
",
                1 + index % 10
            ));
        } else if index % 3 == 0 {
            text.push_str(&format!(
                "id: match-{index}
title: Login of user{index} on web{host}
kind: match
match: 'hostname:web{host} AND details.username:user{index} AND details.result:success'
"
            ));
        } else {
            text.push_str(&format!(
                "id: match-{index}
title: Admin-like names on web{host}
kind: match
match: 'processname:sshd AND hostname:web{host} AND details.username:adm{index}*'
"
            ));
        }
    }
    std::fs::write(directory.join("bench.yml"), text)?;
    Ok(())
}

fn decode(path: &Path) -> anyhow::Result<Vec<Event>> {
    let received: jiff::Timestamp = "2026-06-02T00:00:00Z".parse()?;
    let mut decoder = isms_decode::LineDecoder::new(
        Arc::new(isms_decode::Decoders::builtin()),
        isms_syslog::ParseContext {
            received,
            time_zone: jiff::tz::TimeZone::UTC,
        },
    );
    let origin = Origin {
        peer: None,
        endpoint: "bench".to_owned(),
        key_name: None,
    };
    let delivery = isms_event::Delivery::new(&origin, received);
    let text = std::fs::read_to_string(path)?;
    let mut events = Vec::new();
    for line in text.lines() {
        for line_event in decoder.push_line_typed(line) {
            events.push(line_event.into_event(&delivery)?);
        }
    }
    Ok(events)
}

/// Resident memory of this process, bytes (Linux).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|text| text.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Tracks `count` distinct users in one threshold rule (none fires) and reports the memory.
fn measure_entities(count: u64) -> anyhow::Result<()> {
    let (rules, errors) = isms_detect::parse_rules(
        "id: per-user
title: per user
kind: threshold
parameters: {group_by: [details.username], interval: 1d, threshold: 1000, max_entities: 10000000}
",
        "bench",
    );
    anyhow::ensure!(errors.is_empty(), "{errors:?}");
    let mut engine = Engine::new(rules, Lists::default(), EngineOptions::default());
    let origin = Origin {
        peer: None,
        endpoint: "bench".to_owned(),
        key_name: None,
    };
    let received: jiff::Timestamp = "2026-06-02T00:00:00Z".parse()?;
    let delivery = isms_event::Delivery::new(&origin, received);
    let before = resident_bytes();
    let started = Instant::now();
    for index in 0..count {
        let event = isms_event::normalize_delivered(
            serde_json::json!({
                "summary": "Failed password",
                "category": "authentication",
                "utctimestamp": 1_780_000_000 + (index / 1000) as i64,
                "details": {"username": format!("user-{index:08}"), "result": "failure"}
            }),
            &delivery,
        )?;
        engine.process(&event);
    }
    let after = resident_bytes();
    let tracked = engine.statuses()[0].tracked;
    println!(
        "detect-result mode=entities tracked={tracked} rss_before_mb={:.1} rss_after_mb={:.1} bytes_per_entity={:.0} seconds={:.2}",
        before as f64 / 1e6,
        after as f64 / 1e6,
        after.saturating_sub(before) as f64 / tracked.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
