//! `isms-loadgen detect-peers`: isms against `sec` and `fail2ban-regex` on the same sshd lines with
//! equivalent rules (5 failed passwords for one user, more than 5 from one source, in 5 minutes).
//!
//! The input is built so that every tool's notion of a window gives the same offenders: `sec`
//! counts in wall-clock windows (a file read in seconds is one window), isms in event-time windows,
//! and fail2ban bans by address with `findtime`. So attackers fail in bursts (6 to 20 failed
//! passwords within about three minutes, from one address, against one of ten common names), while
//! every other user fails at most 4 times in the whole file and every other address at most 5
//! times; the rest of the lines are session lines no rule counts. The offenders are then known in
//! advance: the ten names, and every attacking address.
//!
//! Each tool runs on the file once, timed from start to exit; offenders are read from its output:
//! isms replay's JSON lines, the files `sec`'s rules write, and `fail2ban-regex -o row` (every
//! match with its address and time), from which fail2ban's own rule (more than 5 within
//! `findtime` = 300 s, by address) is applied here. fail2ban bans addresses only, so it is compared
//! on sources.
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct PeersArgs {
    /// Lines to generate.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// Attack bursts (each from its own address).
    #[arg(long, default_value_t = 2_000)]
    bursts: u64,
    /// Directory for the input, the rules and the tools' outputs.
    #[arg(long, default_value = "/tmp/isms-detect-peers")]
    out: PathBuf,
    /// The isms binary.
    #[arg(long, default_value = "target/release/isms")]
    isms: PathBuf,
    /// Skip a tool (sec, fail2ban) that is not installed instead of failing.
    #[arg(long)]
    skip_missing: bool,
}

const TARGETS: [&str; 10] = [
    "root", "admin", "oracle", "test", "guest", "ubuntu", "pi", "postgres", "git", "ftp",
];

struct Expected {
    users: BTreeSet<String>,
    sources: BTreeSet<String>,
}

pub fn run(args: PeersArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let log = args.out.join("auth.log");
    let expected = write_input(&log, args.lines, args.bursts)?;
    println!(
        "detect-peers: {} lines in {}; expected offenders: {} users, {} sources",
        args.lines,
        log.display(),
        expected.users.len(),
        expected.sources.len()
    );
    let mut results = Vec::new();

    // isms
    let rules = args.out.join("isms-rules");
    std::fs::create_dir_all(&rules)?;
    std::fs::write(
        rules.join("ssh.yml"),
        "id: failures-per-user
title: 5 failed passwords for one user in 5 minutes
kind: threshold
match: 'processname:sshd AND details.action:login AND details.result:failure'
parameters: {group_by: [details.username], interval: 5m, threshold: 5}
---
id: failures-per-source
title: More than 5 failed passwords from one source in 5 minutes
kind: threshold
match: 'processname:sshd AND details.action:login AND details.result:failure'
parameters: {group_by: [details.sourceipaddress], interval: 5m, compare: gt, threshold: 5}
",
    )?;
    let started = Instant::now();
    let output = Command::new(&args.isms)
        .args(["replay", "--json", "--rules"])
        .arg(&rules)
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot run {}", args.isms.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    if !matches!(output.status.code(), Some(0 | 1)) {
        bail!(
            "isms replay failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut users = BTreeSet::new();
    let mut sources = BTreeSet::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let detection: Value = serde_json::from_str(line)?;
        if detection["state"] != "fired" {
            continue;
        }
        let value = detection["group"][0][1]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match detection["rule_id"].as_str() {
            Some("failures-per-user") => users.insert(value),
            Some("failures-per-source") => sources.insert(value),
            _ => false,
        };
    }
    results.push(("isms replay", seconds, Some(users), Some(sources)));

    // sec
    if tool_exists("sec") {
        let users_file = args.out.join("sec-users.txt");
        let sources_file = args.out.join("sec-sources.txt");
        let _ = std::fs::remove_file(&users_file);
        let _ = std::fs::remove_file(&sources_file);
        let configuration = args.out.join("sec.conf");
        std::fs::write(
            &configuration,
            format!(
                "type=SingleWithThreshold
ptype=RegExp
pattern=sshd\\[\\d+\\]: Failed password for (\\S+) from (\\S+) port
desc=failures for user $1
action=write {users} $1
window=300
thresh=5
continue=TakeNext

type=SingleWithThreshold
ptype=RegExp
pattern=sshd\\[\\d+\\]: Failed password for (\\S+) from (\\S+) port
desc=failures from $2
action=write {sources} $2
window=300
thresh=6
",
                users = users_file.display(),
                sources = sources_file.display()
            ),
        )?;
        let started = Instant::now();
        let status = Command::new("sec")
            .arg(format!("--conf={}", configuration.display()))
            .arg(format!("--input={}", log.display()))
            .args(["--notail", "--quiet", "--log=/dev/null"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("cannot run sec")?;
        let seconds = started.elapsed().as_secs_f64();
        if !status.success() {
            bail!("sec failed: {status}");
        }
        results.push((
            "sec",
            seconds,
            Some(read_set(&users_file)),
            Some(read_set(&sources_file)),
        ));
    } else if !args.skip_missing {
        bail!("sec is not installed (apt-get install sec), or pass --skip-missing");
    }

    // fail2ban-regex
    if tool_exists("fail2ban-regex") {
        let started = Instant::now();
        let output = Command::new("fail2ban-regex")
            .args(["-o", "row", "-r"])
            .arg(&log)
            .arg("sshd")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .output()
            .context("cannot run fail2ban-regex")?;
        let seconds = started.elapsed().as_secs_f64();
        if !output.status.success() {
            bail!("fail2ban-regex failed: {}", output.status);
        }
        let sources = fail2ban_offenders(&String::from_utf8_lossy(&output.stdout), 5, 300.0);
        results.push(("fail2ban-regex", seconds, None, Some(sources)));
    } else if !args.skip_missing {
        bail!("fail2ban-regex is not installed (apt-get install fail2ban), or pass --skip-missing");
    }

    let isms_seconds = results[0].1;
    println!(
        "{:<16} {:>9} {:>12} {:>14} {:>14} {:>22}",
        "tool", "seconds", "lines/s", "users", "sources", "isms faster by"
    );
    for (tool, seconds, users, sources) in &results {
        let verdict = |found: &Option<BTreeSet<String>>, expected: &BTreeSet<String>| match found {
            None => "-".to_owned(),
            Some(found) if found == expected => format!("{} (same)", found.len()),
            Some(found) => format!(
                "{} (DIFFERENT: {} missing, {} extra)",
                found.len(),
                expected.difference(found).count(),
                found.difference(expected).count()
            ),
        };
        println!(
            "{:<16} {:>9.2} {:>12.0} {:>14} {:>14} {:>22}",
            tool,
            seconds,
            args.lines as f64 / seconds,
            verdict(users, &expected.users),
            verdict(sources, &expected.sources),
            format!("{:.1}x", seconds / isms_seconds)
        );
        println!(
            "detect-peers-result tool={} seconds={seconds:.3} lines_per_second={:.0}",
            tool.replace(' ', "-"),
            args.lines as f64 / seconds
        );
    }
    Ok(())
}

fn tool_exists(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

fn read_set(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| line.trim().to_owned())
        .filter(|line| !line.is_empty())
        .collect()
}

/// Addresses with more than `most` matches within `window` seconds, from `fail2ban-regex -o row`.
fn fail2ban_offenders(rows: &str, most: usize, window: f64) -> BTreeSet<String> {
    let mut times: HashMap<String, VecDeque<f64>> = HashMap::new();
    let mut offenders = BTreeSet::new();
    for row in rows.lines() {
        // ['203.0.113.5',\t1780308001.0,\t{...}],
        let mut fields = row.trim_start_matches('[').splitn(3, ",\t");
        let (Some(address), Some(time)) = (fields.next(), fields.next()) else {
            continue;
        };
        let address = address.trim_matches('\'').to_owned();
        let Ok(time) = time.trim().parse::<f64>() else {
            continue;
        };
        let seen = times.entry(address.clone()).or_default();
        seen.push_back(time);
        while seen.front().is_some_and(|&first| first <= time - window) {
            seen.pop_front();
        }
        if seen.len() > most {
            offenders.insert(address);
        }
    }
    offenders
}

/// Writes the input and returns the offenders it holds.
fn write_input(path: &Path, lines: u64, bursts: u64) -> anyhow::Result<Expected> {
    let mut random = StdRng::seed_from_u64(2026);
    let day = 86_400i64;
    let mut timed: Vec<(i64, String)> = Vec::with_capacity(lines as usize);
    let mut expected = Expected {
        users: BTreeSet::new(),
        sources: BTreeSet::new(),
    };
    let line = |time: i64, host: usize, pid: u32, text: &str| {
        format!(
            "Jun  1 {:02}:{:02}:{:02} web{host} sshd[{pid}]: {text}",
            time / 3600,
            time / 60 % 60,
            time % 60
        )
    };
    for burst in 0..bursts {
        let source = format!("203.{}.{}.{}", 0, burst / 250, burst % 250 + 1);
        let user = TARGETS[random.random_range(0..TARGETS.len())];
        let count = random.random_range(6..=20);
        let mut time = random.random_range(0..day - 400);
        let host = random.random_range(0..50);
        for _ in 0..count {
            let port = random.random_range(1024..65535);
            let pid = random.random_range(1000..60000);
            timed.push((
                time,
                line(
                    time,
                    host,
                    pid,
                    &format!("Failed password for {user} from {source} port {port} ssh2"),
                ),
            ));
            time += random.random_range(1..10);
        }
        expected.users.insert(user.to_owned());
        expected.sources.insert(source);
    }
    // Everyday failures: each user at most 4, each address at most 5 in the whole file.
    let mut source_failures: HashMap<u32, u32> = HashMap::new();
    for user in 0..20_000u32 {
        for _ in 0..random.random_range(0..=4) {
            let mut number = random.random_range(0..200_000u32);
            while source_failures.get(&number).copied().unwrap_or(0) >= 5 {
                number = random.random_range(0..200_000u32);
            }
            *source_failures.entry(number).or_default() += 1;
            let source = format!(
                "10.{}.{}.{}",
                number / 65536,
                number / 256 % 256,
                number % 256
            );
            let time = random.random_range(0..day);
            timed.push((
                time,
                line(
                    time,
                    random.random_range(0..50),
                    random.random_range(1000..60000),
                    &format!(
                        "Failed password for user{user} from {source} port {} ssh2",
                        random.random_range(1024..65535)
                    ),
                ),
            ));
        }
    }
    // The rest: session lines.
    while (timed.len() as u64) < lines {
        let time = random.random_range(0..day);
        timed.push((
            time,
            line(
                time,
                random.random_range(0..50),
                random.random_range(1000..60000),
                &format!(
                    "pam_unix(sshd:session): session opened for user user{}(uid=1000) by (uid=0)",
                    random.random_range(0..20_000)
                ),
            ),
        ));
    }
    timed.sort_by_key(|(time, _)| *time);
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    for (_, text) in &timed {
        writeln!(writer, "{text}")?;
    }
    writer.flush()?;
    Ok(expected)
}
