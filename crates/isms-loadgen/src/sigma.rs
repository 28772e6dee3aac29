//! `isms-loadgen sigma-peers`: `isms replay` against the `rsigma` command-line tool on the same
//! Sigma rules and the same JSON events, both timed, their matches compared rule by rule.
//!
//! Rules are generated from templates over a Windows process-creation vocabulary (equality of an
//! event id, `endswith` on images, `contains` and `contains|all` on command lines, value lists,
//! `startswith`, a regex, a numeric comparison, and selections with a filter, `1 of` and `all of`),
//! each with its own values, so every rule is different and most events match a few rules. Events
//! are JSON lines drawn from the same vocabulary, or (`--routine-percent`) mostly routine activity
//! no rule names, as most of a real log is. `base64offset` is left out: rsigma-eval 0.23
//! reads it differently from pySigma (see `isms-detect/tests/sigma_oracle.rs`).
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub struct SigmaPeersArgs {
    /// Rules to generate.
    #[arg(long, default_value_t = 100)]
    rules: usize,
    /// JSON events to generate.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Directory for the rules, the events and the tools' outputs.
    #[arg(long, default_value = "/tmp/isms-sigma-peers")]
    out: PathBuf,
    /// The isms binary.
    #[arg(long, default_value = "target/release/isms")]
    isms: PathBuf,
    /// The rsigma binary (`cargo install rsigma@0.23.0`).
    #[arg(long, default_value = "rsigma")]
    rsigma: PathBuf,
    /// Percent of events that are routine activity no rule matches (programs, words and parents
    /// outside the rules' vocabulary), as most of a real log is; 0 draws every event from the
    /// rules' vocabulary (about 2.6 matches per event with 100 rules, 27 with 1,000).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    routine_percent: u8,
}

/// Routine programs and words: no generated rule names any of them.
const ROUTINE_PROGRAMS: &[&str] = &[
    "agentsvc", "backupd", "updater", "indexer", "spooler", "teams", "onedrive", "slack", "zoom",
    "vpnagent",
];
const ROUTINE_WORDS: &[&str] = &[
    "--sync",
    "--quiet",
    "--check",
    "--daemon",
    "--profile",
    "default",
    "report",
    "status",
    "refresh",
    "upload",
];

const WORDS: &[&str] = &[
    "whoami",
    "net",
    "user",
    "add",
    "powershell",
    "nop",
    "hidden",
    "enc",
    "bypass",
    "invoke",
    "expression",
    "download",
    "string",
    "iex",
    "certutil",
    "urlcache",
    "split",
    "bitsadmin",
    "transfer",
    "regsvr32",
    "scrobj",
    "rundll32",
    "javascript",
    "mshta",
    "vbscript",
    "wmic",
    "process",
    "call",
    "create",
    "schtasks",
    "sc",
    "config",
    "reg",
    "query",
    "save",
    "hklm",
    "sam",
    "system",
    "vssadmin",
    "delete",
    "shadows",
    "bcdedit",
    "recoveryenabled",
    "wevtutil",
    "cl",
    "security",
    "nltest",
    "domain_trusts",
    "dsquery",
    "adfind",
    "psexec",
    "accepteula",
    "procdump",
    "lsass",
    "minidump",
    "comsvcs",
    "tasklist",
    "taskkill",
    "netsh",
    "firewall",
    "portproxy",
    "ipconfig",
    "arp",
    "route",
    "nslookup",
    "ping",
    "tracert",
    "curl",
    "wget",
    "ftp",
    "tftp",
    "copy",
    "xcopy",
    "robocopy",
    "move",
    "attrib",
    "icacls",
    "takeown",
    "cacls",
    "cipher",
    "fsutil",
    "usn",
    "forfiles",
    "pcalua",
    "msiexec",
    "installutil",
    "regasm",
    "regsvcs",
    "msbuild",
    "cmstp",
    "odbcconf",
    "mavinject",
    "control",
    "cpl",
    "explorer",
];

const IMAGES: &[&str] = &[
    "cmd",
    "powershell",
    "pwsh",
    "wmic",
    "certutil",
    "bitsadmin",
    "regsvr32",
    "rundll32",
    "mshta",
    "cscript",
    "wscript",
    "schtasks",
    "sc",
    "reg",
    "vssadmin",
    "bcdedit",
    "wevtutil",
    "nltest",
    "dsquery",
    "psexec",
    "procdump",
    "tasklist",
    "taskkill",
    "netsh",
    "msiexec",
    "installutil",
    "msbuild",
    "cmstp",
    "odbcconf",
    "control",
    "explorer",
    "svchost",
    "lsass",
    "winword",
    "excel",
    "outlook",
    "chrome",
    "firefox",
    "notepad",
    "calc",
];

const USERS: &[&str] = &[
    "SYSTEM",
    "alice",
    "bob",
    "carol",
    "svc_backup",
    "Administrator",
];

const EVENT_IDS: &[u64] = &[1, 3, 4624, 4625, 4688, 4720, 7045];

fn pick<'a, T>(random: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[random.random_range(0..items.len())]
}

/// One generated rule's detection section (indented under `detection:`).
fn detection(random: &mut StdRng) -> String {
    let word = |random: &mut StdRng| (*pick(random, WORDS)).to_owned();
    let image = |random: &mut StdRng| (*pick(random, IMAGES)).to_owned();
    match random.random_range(0..9) {
        0 => format!(
            "    selection:\n        EventID: {}\n        Image|endswith: '\\{}.exe'\n    condition: selection",
            pick(random, EVENT_IDS),
            image(random)
        ),
        1 => format!(
            "    selection:\n        CommandLine|contains: '{}'\n    condition: selection",
            word(random)
        ),
        2 => format!(
            "    selection:\n        CommandLine|contains|all:\n            - '{}'\n            - '{}'\n    condition: selection",
            word(random),
            word(random)
        ),
        3 => format!(
            "    selection:\n        Image|endswith:\n            - '\\{}.exe'\n            - '\\{}.exe'\n            - '\\{}.exe'\n    condition: selection",
            image(random),
            image(random),
            image(random)
        ),
        4 => format!(
            "    selection:\n        ParentImage|startswith: 'C:\\Program Files\\{}'\n        CommandLine|contains: '{}'\n    condition: selection",
            image(random),
            word(random)
        ),
        5 => format!(
            "    selection:\n        CommandLine|re: '{}\\s+-{}'\n    condition: selection",
            word(random),
            word(random)
        ),
        6 => format!(
            "    selection:\n        DestinationPort|gt: {}\n        Image|endswith: '\\{}.exe'\n    condition: selection",
            random.random_range(1000..60000),
            image(random)
        ),
        7 => format!(
            "    selection:\n        Image|endswith: '\\{}.exe'\n    filter:\n        User: '{}'\n    condition: selection and not filter",
            image(random),
            pick(random, USERS)
        ),
        _ => format!(
            "    selection_a:\n        CommandLine|contains: '{}'\n    selection_b:\n        Image|endswith: '\\{}.exe'\n    condition: 1 of selection_*",
            word(random),
            image(random)
        ),
    }
}

fn write_rules(directory: &Path, count: usize, random: &mut StdRng) -> anyhow::Result<()> {
    if directory.exists() {
        std::fs::remove_dir_all(directory)?;
    }
    std::fs::create_dir_all(directory)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(directory.join("rules.yml"))?);
    for index in 0..count {
        if index > 0 {
            writeln!(file, "---")?;
        }
        writeln!(
            file,
            "title: Generated rule {index}\nid: 9b000000-0000-4000-8000-{index:012}\nlevel: medium\nlogsource: {{product: windows, category: process_creation}}\ndetection:\n{}",
            detection(random)
        )?;
    }
    file.flush()?;
    Ok(())
}

fn write_events(
    path: &Path,
    count: usize,
    routine_percent: u8,
    random: &mut StdRng,
) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for _ in 0..count {
        if random.random_range(0..100) < routine_percent {
            let program = pick(random, ROUTINE_PROGRAMS);
            let words: Vec<&str> = (0..random.random_range(1..4))
                .map(|_| *pick(random, ROUTINE_WORDS))
                .collect();
            let event = json!({
                "EventID": pick(random, EVENT_IDS),
                "Image": format!("C:\\Program Files\\Vendor\\{program}.exe"),
                "ParentImage": "C:\\Windows\\explorer.exe",
                "CommandLine": format!("{program}.exe {}", words.join(" ")),
                "User": pick(random, USERS),
                "DestinationPort": random.random_range(1..65535),
                "Computer": format!("ws{:03}", random.random_range(0..200)),
            });
            serde_json::to_writer(&mut file, &event)?;
            writeln!(file)?;
            continue;
        }
        let words: Vec<&str> = (0..random.random_range(1..6))
            .map(|_| *pick(random, WORDS))
            .collect();
        let image = pick(random, IMAGES);
        let event = json!({
            "EventID": pick(random, EVENT_IDS),
            "Image": format!("C:\\Windows\\System32\\{image}.exe"),
            "ParentImage": format!("C:\\Program Files\\{}\\app.exe", pick(random, IMAGES)),
            "CommandLine": format!("{image}.exe {}", words.join(" -")),
            "User": pick(random, USERS),
            "DestinationPort": random.random_range(1..65535),
            "Computer": format!("ws{:03}", random.random_range(0..200)),
        });
        serde_json::to_writer(&mut file, &event)?;
        writeln!(file)?;
    }
    file.flush()?;
    Ok(())
}

/// Runs a command under GNU time; returns its standard output, seconds and peak RSS (KiB).
fn timed(mut command: Command, output: &Path) -> anyhow::Result<(f64, u64)> {
    let rss_file = output.with_extension("rss");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(command.get_program())
        .args(command.get_args());
    command = timed;
    command.stdout(std::fs::File::create(output)?);
    let started = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("cannot run {:?}", command.get_program()))?;
    let seconds = started.elapsed().as_secs_f64();
    // isms replay exits 1 when nothing fired; both are runs that finished.
    if !matches!(status.code(), Some(0 | 1)) {
        bail!("{:?} failed: {status}", command.get_args().nth(4));
    }
    let rss = std::fs::read_to_string(&rss_file)?
        .lines()
        .last()
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap_or(0);
    Ok((seconds, rss))
}

/// Matches per Sigma rule id in a file of JSON lines, the id read by `id_of`.
fn count_matches(
    path: &Path,
    id_of: impl Fn(&Value) -> Option<String>,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(path)?.lines() {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let Some(id) = id_of(&value) {
            *counts.entry(id).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

pub fn run(args: SigmaPeersArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let mut random = StdRng::seed_from_u64(0x5167_3a00 + args.rules as u64);
    let rules = args.out.join(format!("rules-{}", args.rules));
    write_rules(&rules, args.rules, &mut random)?;
    let events = args.out.join(format!(
        "events-{}-routine{}.jsonl",
        args.events, args.routine_percent
    ));
    if !events.exists() {
        write_events(
            &events,
            args.events,
            args.routine_percent,
            &mut StdRng::seed_from_u64(7),
        )?;
    }
    println!(
        "sigma-peers: {} rules in {}, {} events in {}",
        args.rules,
        rules.display(),
        args.events,
        events.display()
    );

    let isms_output = args.out.join("isms.jsonl");
    let mut isms = Command::new(&args.isms);
    isms.arg("replay")
        .arg("--json")
        .arg("--rules")
        .arg(&rules)
        .arg(&events);
    let (isms_seconds, isms_rss) = timed(isms, &isms_output)?;
    let isms_counts = count_matches(&isms_output, |detection| {
        detection["rule_id"]
            .as_str()
            .and_then(|id| id.strip_prefix("sigma-"))
            .map(str::to_owned)
    })?;

    let rsigma_output = args.out.join("rsigma.jsonl");
    let mut rsigma = Command::new(&args.rsigma);
    rsigma
        .arg("--output-format")
        .arg("ndjson")
        .arg("engine")
        .arg("eval")
        .arg("--no-stats")
        .arg("-r")
        .arg(&rules)
        .arg("-e")
        .arg(format!("@{}", events.display()));
    let (rsigma_seconds, rsigma_rss) = timed(rsigma, &rsigma_output)?;
    let rsigma_counts = count_matches(&rsigma_output, |result| {
        result["rule_id"].as_str().map(str::to_owned)
    })?;

    let isms_total: u64 = isms_counts.values().sum();
    let rsigma_total: u64 = rsigma_counts.values().sum();
    let differing: Vec<String> = isms_counts
        .keys()
        .chain(rsigma_counts.keys())
        .filter(|id| isms_counts.get(*id) != rsigma_counts.get(*id))
        .take(5)
        .map(|id| {
            format!(
                "{id}: isms {} rsigma {}",
                isms_counts.get(id).copied().unwrap_or(0),
                rsigma_counts.get(id).copied().unwrap_or(0)
            )
        })
        .collect();
    println!(
        "{:<8} {:>9} {:>12} {:>10} {:>10}",
        "tool", "seconds", "events/s", "matches", "RSS MiB"
    );
    for (tool, seconds, total, rss) in [
        ("isms", isms_seconds, isms_total, isms_rss),
        ("rsigma", rsigma_seconds, rsigma_total, rsigma_rss),
    ] {
        println!(
            "{tool:<8} {seconds:>9.2} {:>12.0} {total:>10} {:>10.1}",
            args.events as f64 / seconds,
            rss as f64 / 1024.0
        );
        println!(
            "sigma-peers-result tool={tool} rules={} events={} seconds={seconds:.3} events_per_second={:.0} matches={total} rss_kib={rss}",
            args.rules,
            args.events,
            args.events as f64 / seconds
        );
    }
    println!(
        "isms faster by {:.2}x; matches {}",
        rsigma_seconds / isms_seconds,
        if differing.is_empty() {
            "identical, rule by rule".to_owned()
        } else {
            format!("differ: {}", differing.join("; "))
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Routine events must match no generated rule: no rule word occurs in a routine program or
    /// word (`cl` in a program once made a tenth of them match), and no routine program is a rule
    /// image.
    #[test]
    fn no_rule_word_or_image_is_in_routine_activity() {
        for routine in ROUTINE_PROGRAMS.iter().chain(ROUTINE_WORDS) {
            for word in WORDS {
                assert!(!routine.contains(word), "{word} is in {routine}");
            }
        }
        for program in ROUTINE_PROGRAMS {
            assert!(!IMAGES.contains(program), "{program}");
        }
    }
}
