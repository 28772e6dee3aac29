//! `syslog` mode: N syslog messages over UDP or TCP to a receiver on loopback, then the time until they
//! are all stored.
//!
//! Syslog has no acknowledgment, so how fast a sender can write says little: a receiver may drop UDP
//! datagrams or hold data in memory. What matters is how fast messages become *stored*, and how many
//! never are. So this mode sends, then watches the receiver's store grow until it holds every message
//! (or stops growing for `--settle-seconds`: the rest is lost), and reports three numbers: messages per
//! second sent, messages per second stored from the first send to the last one stored, and the loss.
//!
//! Two kinds of sink are watched, so isms can be compared with rsyslog or syslog-ng on the same load:
//!
//! - isms (`--url`): `/metrics`' `isms_syslog_messages_total`, counted once a batch's append has
//!   returned (committed with the store's sync, fsynced by default); cheap to poll. If the counter is
//!   missing, `/status`'s event count is polled instead. At the end the growth of `/status`'s count is
//!   reported as well, as a cross-check. Neither needs a key.
//! - a file (`--file`): its new lines, for another daemon writing what it receives to a file.
//!
//! Over UDP the kernel's count of datagrams dropped for a full receive buffer (`/proc/net/snmp`) is
//! reported too: it tells whether the loss happened before the receiver read the datagrams.
//!
//! The messages are realistic (sshd failures and logins, PAM, sudo, cron, a firewall drop; RFC 3164
//! and RFC 5424 with and without structured data; varying hosts, users and addresses; about 130 to 300
//! bytes, 190 on average) and prepared from a fixed seed before the clock starts. Bounded: the message
//! count, at most 1,024 connections, and `--max-wait-seconds` for the whole wait.
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// One datagram per message.
    Udp,
    /// Streams, framed by `--framing`.
    Tcp,
}

/// How TCP frames are delimited (RFC 6587).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Framing {
    /// `LEN SP MSG`.
    Octet,
    /// `MSG LF`.
    Lf,
}

/// Which header the messages have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Half RFC 3164, half RFC 5424.
    Mixed,
    /// `<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`.
    Rfc3164,
    /// `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`.
    Rfc5424,
}

/// The options of `isms-loadgen syslog`.
#[derive(Debug, clap::Args)]
pub struct SyslogArgs {
    /// Receiver to send to (host:port, loopback only).
    #[arg(long, default_value = "127.0.0.1:5514")]
    target: String,
    #[arg(long, value_enum, default_value = "udp")]
    transport: Transport,
    /// Messages to send.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// TCP connections, or UDP sockets, sending side by side (1 to 1024).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// TCP framing.
    #[arg(long, value_enum, default_value = "octet")]
    framing: Framing,
    #[arg(long, value_enum, default_value = "mixed")]
    format: Format,
    /// Messages per second over all connections; 0 sends flat out.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// isms's HTTP address, whose /metrics and /status say how many messages are stored.
    #[arg(long, conflicts_with = "file", required_unless_present = "file")]
    url: Option<String>,
    /// A file another syslog daemon writes every message to, one line each.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Lines the file must gain [default: the message count].
    #[arg(long, requires = "file")]
    expect_lines: Option<u64>,
    /// Stop waiting when the stored count has not grown for this long after the last send.
    #[arg(long, default_value_t = 5)]
    settle_seconds: u64,
    /// Stop waiting after this long in all.
    #[arg(long, default_value_t = 900)]
    max_wait_seconds: u64,
}

/// Distinct messages prepared; longer runs send them again in turn.
const POOL_MESSAGES: u64 = 100_000;

/// Most connections or sockets.
const MAX_CONNECTIONS: usize = 1024;

/// Most messages one run may send.
const MAX_MESSAGES: u64 = 100_000_000;

pub async fn run(args: SyslogArgs) -> anyhow::Result<()> {
    crate::ensure_loopback(&args.target)?;
    let target = args
        .target
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", args.target))?
        .next()
        .context("the target resolves to no address")?;
    if !(1..=MAX_CONNECTIONS).contains(&args.connections) {
        bail!("--connections must be 1 to {MAX_CONNECTIONS}");
    }
    if args.messages == 0 || args.messages > MAX_MESSAGES {
        bail!("--messages must be 1 to {MAX_MESSAGES}");
    }
    let mut sink = match (&args.url, &args.file) {
        (Some(url), _) => {
            crate::ensure_loopback(url)?;
            Sink::isms(url).await?
        }
        (None, Some(path)) => Sink::file(path.clone(), args.expect_lines.unwrap_or(args.messages))?,
        (None, None) => bail!("give --url (isms) or --file (another daemon's output)"),
    };
    let expected = sink.expected(args.messages);

    let mut random = StdRng::seed_from_u64(5514);
    let now = jiff::Timestamp::now();
    let pool: Vec<Vec<u8>> = (0..args.messages.min(POOL_MESSAGES))
        .map(|index| sample_message(&mut random, args.format, index, now))
        .collect();
    let average_bytes = pool.iter().map(Vec::len).sum::<usize>() as f64 / pool.len() as f64;
    let pool = Arc::new(pool);

    let udp_errors_before = udp_receive_buffer_errors();
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut senders = Vec::new();
    for worker in 0..args.connections {
        // Worker w sends messages w, w + C, w + 2C, ...
        let share =
            (args.messages + (args.connections - 1 - worker) as u64) / args.connections as u64;
        let plan = SendPlan {
            target,
            transport: args.transport,
            framing: args.framing,
            first: worker as u64,
            step: args.connections as u64,
            count: share,
            rate: (args.rate as f64 / args.connections as f64),
            started,
        };
        let (pool, sent) = (pool.clone(), sent.clone());
        senders.push(std::thread::spawn(move || send(&plan, &pool, &sent)));
    }

    // Watch the sink while sending, so the moment the last message is stored is seen.
    let mut stored = 0u64;
    let mut last_growth = started;
    let mut send_elapsed = None;
    let settle = Duration::from_secs(args.settle_seconds.max(1));
    let deadline = started + Duration::from_secs(args.max_wait_seconds.max(1));
    let stop_reason = loop {
        tokio::time::sleep(sink.poll_interval()).await;
        let count = sink.count().await?;
        if count > stored {
            stored = count;
            last_growth = Instant::now();
        }
        if send_elapsed.is_none() && senders.iter().all(|sender| sender.is_finished()) {
            for sender in senders.drain(..) {
                sender
                    .join()
                    .map_err(|_| anyhow::anyhow!("a sender thread panicked"))??;
            }
            send_elapsed = Some(started.elapsed());
        }
        if stored >= expected {
            break "all stored";
        }
        let now = Instant::now();
        if send_elapsed.is_some() && now.duration_since(last_growth) > settle {
            break "the count stopped growing";
        }
        if now > deadline {
            break "--max-wait-seconds passed";
        }
    };
    let send_elapsed = match send_elapsed {
        Some(elapsed) => elapsed,
        None => bail!("the senders were still sending when the wait ended ({stop_reason})"),
    };
    let sent = sent.load(Ordering::Relaxed);
    let store_elapsed = last_growth.duration_since(started).as_secs_f64();
    let rate = |count: u64, seconds: f64| count as f64 / seconds.max(1e-9);
    let pacing = match args.rate {
        0 => "flat out".to_owned(),
        rate => format!("paced at {rate}/s"),
    };
    let transport = match (args.transport, args.framing) {
        (Transport::Udp, _) => "udp".to_owned(),
        (Transport::Tcp, Framing::Octet) => "tcp, octet-counted".to_owned(),
        (Transport::Tcp, Framing::Lf) => "tcp, LF-terminated".to_owned(),
    };
    println!(
        "syslog: {sent} messages ({transport}, {} connections, {pacing}, ~{average_bytes:.0} bytes, {:?}) to {target}",
        args.connections, args.format
    );
    println!(
        "syslog: sent in {:.2} s = {:.0} messages/s",
        send_elapsed.as_secs_f64(),
        rate(sent, send_elapsed.as_secs_f64())
    );
    println!(
        "syslog: stored {stored} of {expected} ({}) in {store_elapsed:.2} s from the first send = {:.0} messages/s end to end; lost {}; wait ended: {stop_reason}",
        sink.describe(),
        rate(stored, store_elapsed),
        expected.saturating_sub(stored),
    );
    if let Some(note) = sink.closing_note().await? {
        println!("syslog: {note}");
    }
    if args.transport == Transport::Udp
        && let (Some(before), Some(after)) = (udp_errors_before, udp_receive_buffer_errors())
    {
        println!(
            "syslog: the kernel dropped {} udp datagrams on this host meanwhile (receive buffers full)",
            after.saturating_sub(before)
        );
    }
    // One line for scripts (scripts/bench-syslog reads it).
    println!(
        "syslog-result sent={sent} sent_per_second={:.0} stored={stored} stored_per_second={:.0} lost={}",
        rate(sent, send_elapsed.as_secs_f64()),
        rate(stored, store_elapsed),
        expected.saturating_sub(stored),
    );
    Ok(())
}

/// What one sender thread does.
struct SendPlan {
    target: SocketAddr,
    transport: Transport,
    framing: Framing,
    /// Its messages are `first`, `first + step`, ... (`count` of them), taken from the pool in turn.
    first: u64,
    step: u64,
    count: u64,
    /// Messages per second for this sender; 0 for flat out.
    rate: f64,
    started: Instant,
}

fn send(plan: &SendPlan, pool: &[Vec<u8>], sent: &AtomicU64) -> anyhow::Result<()> {
    let message = |k: u64| &pool[((plan.first + k * plan.step) % pool.len() as u64) as usize];
    match plan.transport {
        Transport::Udp => {
            let local: SocketAddr = if plan.target.is_ipv4() {
                "127.0.0.1:0".parse()?
            } else {
                "[::1]:0".parse()?
            };
            let socket = UdpSocket::bind(local)?;
            socket.connect(plan.target)?;
            for k in 0..plan.count {
                pace(plan, k, || Ok(()))?;
                socket
                    .send(message(k))
                    .with_context(|| format!("udp send to {}", plan.target))?;
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        Transport::Tcp => {
            let stream = TcpStream::connect(plan.target)
                .with_context(|| format!("tcp connect to {}", plan.target))?;
            stream.set_nodelay(true)?;
            let mut writer = BufWriter::with_capacity(64 * 1024, stream);
            for k in 0..plan.count {
                pace(plan, k, || writer.flush())?;
                let bytes = message(k);
                match plan.framing {
                    Framing::Octet => {
                        write!(writer, "{} ", bytes.len())?;
                        writer.write_all(bytes)?;
                    }
                    Framing::Lf => {
                        writer.write_all(bytes)?;
                        writer.write_all(b"\n")?;
                    }
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            writer.flush()?;
            let stream = writer.into_inner().map_err(|error| error.into_error())?;
            stream.shutdown(std::net::Shutdown::Write)?;
        }
    }
    Ok(())
}

/// Waits until message `k` is due when a rate is set (flushing buffered data before sleeping).
fn pace(
    plan: &SendPlan,
    k: u64,
    mut flush: impl FnMut() -> std::io::Result<()>,
) -> std::io::Result<()> {
    if plan.rate <= 0.0 || !k.is_multiple_of(16) {
        return Ok(());
    }
    let due = plan.started + Duration::from_secs_f64(k as f64 / plan.rate);
    let now = Instant::now();
    if due > now + Duration::from_millis(1) {
        flush()?;
        std::thread::sleep(due - now);
    }
    Ok(())
}

/// Where stored messages are counted.
enum Sink {
    Isms(IsmsSink),
    File(FileSink),
}

struct IsmsSink {
    client: reqwest::Client,
    base: String,
    /// The counter's value and the store's event count before the run.
    metric_before: Option<u64>,
    events_before: u64,
    /// `/metrics` had no `isms_syslog_messages_total` at the last poll: `/status` was used.
    used_status: bool,
}

struct FileSink {
    path: PathBuf,
    expect_lines: u64,
    /// Open once the file exists, and the offset read up to.
    file: Option<(std::fs::File, u64)>,
    lines: u64,
    lines_before: u64,
}

impl Sink {
    async fn isms(url: &str) -> anyhow::Result<Sink> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let base = url.trim_end_matches('/').to_owned();
        let metric_before = stored_metric(&client, &base).await?;
        let events_before = store_events(&client, &base).await?;
        Ok(Sink::Isms(IsmsSink {
            client,
            base,
            metric_before,
            events_before,
            used_status: false,
        }))
    }

    fn file(path: PathBuf, expect_lines: u64) -> anyhow::Result<Sink> {
        let mut sink = FileSink {
            path,
            expect_lines,
            file: None,
            lines: 0,
            lines_before: 0,
        };
        sink.read_lines()?;
        sink.lines_before = sink.lines;
        Ok(Sink::File(sink))
    }

    fn expected(&self, messages: u64) -> u64 {
        match self {
            Sink::Isms(_) => messages,
            Sink::File(sink) => sink.expect_lines,
        }
    }

    fn poll_interval(&self) -> Duration {
        match self {
            Sink::Isms(_) => Duration::from_millis(100),
            Sink::File(_) => Duration::from_millis(50),
        }
    }

    /// Messages stored since the run began.
    async fn count(&mut self) -> anyhow::Result<u64> {
        match self {
            Sink::Isms(sink) => match stored_metric(&sink.client, &sink.base).await? {
                Some(value) => {
                    sink.used_status = false;
                    Ok(value.saturating_sub(sink.metric_before.unwrap_or(0)))
                }
                None => {
                    sink.used_status = true;
                    let events = store_events(&sink.client, &sink.base).await?;
                    Ok(events.saturating_sub(sink.events_before))
                }
            },
            Sink::File(sink) => {
                sink.read_lines()?;
                Ok(sink.lines.saturating_sub(sink.lines_before))
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Sink::Isms(IsmsSink {
                used_status: false, ..
            }) => "isms, counted once committed: /metrics isms_syslog_messages_total".to_owned(),
            Sink::Isms(_) => "isms, counted once committed: /status event count".to_owned(),
            Sink::File(sink) => format!("lines written to {}", sink.path.display()),
        }
    }

    /// For isms: how much the store's own event count grew, as a cross-check of the counter.
    async fn closing_note(&self) -> anyhow::Result<Option<String>> {
        match self {
            Sink::Isms(sink) => {
                let events = store_events(&sink.client, &sink.base).await?;
                let grown = events.saturating_sub(sink.events_before);
                Ok(Some(format!(
                    "isms /status: the store grew by {grown} events"
                )))
            }
            Sink::File(_) => Ok(None),
        }
    }
}

impl FileSink {
    /// Counts the lines written since the last call (the file may not exist yet).
    fn read_lines(&mut self) -> anyhow::Result<()> {
        if self.file.is_none() {
            match std::fs::File::open(&self.path) {
                Ok(opened) => self.file = Some((opened, 0)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(error) => {
                    return Err(error).with_context(|| self.path.display().to_string());
                }
            }
        }
        let Some((opened, offset)) = &mut self.file else {
            return Ok(());
        };
        opened.seek(SeekFrom::Start(*offset))?;
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let read = opened.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            *offset += read as u64;
            self.lines += buffer[..read].iter().filter(|byte| **byte == b'\n').count() as u64;
        }
        Ok(())
    }
}

/// Linux's count of UDP datagrams dropped because a socket's receive buffer was full (all sockets).
fn udp_receive_buffer_errors() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut lines = text.lines().filter(|line| line.starts_with("Udp: "));
    let (names, values) = (lines.next()?, lines.next()?);
    let column = names
        .split_whitespace()
        .position(|name| name == "RcvbufErrors")?;
    values.split_whitespace().nth(column)?.parse().ok()
}

/// The sum of `isms_syslog_messages_total` over its endpoints, if `/metrics` has it.
async fn stored_metric(client: &reqwest::Client, base: &str) -> anyhow::Result<Option<u64>> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(metric_sum(&text, "isms_syslog_messages_total"))
}

/// Sums the samples of one metric in Prometheus' text format.
fn metric_sum(text: &str, name: &str) -> Option<u64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue; // another metric whose name starts the same
        }
        if let Some(value) = rest
            .rsplit(' ')
            .next()
            .and_then(|value| value.parse::<f64>().ok())
        {
            *found.get_or_insert(0) += value as u64;
        }
    }
    found
}

async fn store_events(client: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let status: serde_json::Value = client
        .get(format!("{base}/status"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    status["store"]["events"]
        .as_u64()
        .context("/status has no store.events")
}

/// One realistic message of about 130 to 300 bytes (190 on average): sshd, PAM, sudo, cron, or a firewall drop, from one of a few
/// hundred hosts, in RFC 3164 or RFC 5424 (with or without structured data). `index` decides the format
/// of a mixed run, so the mix is exact.
pub fn sample_message(
    random: &mut StdRng,
    format: Format,
    index: u64,
    now: jiff::Timestamp,
) -> Vec<u8> {
    const USERS: [&str; 12] = [
        "root", "admin", "alice", "bob", "deploy", "ubuntu", "postgres", "jenkins", "oracle",
        "git", "test", "backup",
    ];
    const SERVICES: [&str; 6] = ["nginx", "postgresql", "docker", "sshd", "cron", "haproxy"];
    const JOBS: [&str; 5] = [
        "backup-incremental",
        "logrotate-extra",
        "certbot-renew",
        "sync-mirror",
        "db-vacuum",
    ];
    const SITES: [&str; 4] = ["eu-west", "us-east", "ap-south", "dc1"];
    const ROLES: [&str; 5] = ["web", "db", "bastion", "mail", "build"];
    let host = format!(
        "{}-{:02}.{}.prod.example.com",
        ROLES[random.random_range(0..ROLES.len())],
        random.random_range(1..60),
        SITES[random.random_range(0..SITES.len())],
    );
    let user = if random.random_bool(0.7) {
        USERS[random.random_range(0..USERS.len())].to_owned()
    } else {
        format!("user{:04}", random.random_range(0..5000))
    };
    let address = match random.random_range(0..4) {
        0 => format!(
            "10.{}.{}.{}",
            random.random_range(0..8),
            random.random_range(0..256),
            random.random_range(1..255)
        ),
        1 => format!("192.0.2.{}", random.random_range(1..255)),
        2 => format!("198.51.100.{}", random.random_range(1..255)),
        _ => format!("203.0.113.{}", random.random_range(1..255)),
    };
    let port = random.random_range(1024..65_535);
    let pid = random.random_range(300..65_000);
    // (facility * 8 + severity, program, pid shown, text)
    let (priority, program, text) = match random.random_range(0..10) {
        0..=2 => {
            let invalid = if random.random_bool(0.4) {
                "invalid user "
            } else {
                ""
            };
            (
                38, // auth.info
                "sshd",
                format!("Failed password for {invalid}{user} from {address} port {port} ssh2"),
            )
        }
        3 => {
            let fingerprint: String = (0..43)
                .map(|_| {
                    const B64: &[u8] =
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                    B64[random.random_range(0..B64.len())] as char
                })
                .collect();
            (
                38,
                "sshd",
                format!(
                    "Accepted publickey for {user} from {address} port {port} ssh2: ED25519 SHA256:{fingerprint}"
                ),
            )
        }
        4 => (
            86, // authpriv.info
            "sshd",
            format!(
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={address}  user={user}"
            ),
        ),
        5 | 6 => (
            85, // authpriv.notice
            "sudo",
            format!(
                "{user} : TTY=pts/{} ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/systemctl restart {}.service",
                random.random_range(0..8),
                SERVICES[random.random_range(0..SERVICES.len())]
            ),
        ),
        7 => (
            86, // authpriv.info
            "sudo",
            format!(
                "pam_unix(sudo:session): session opened for user root(uid=0) by {user}(uid={})",
                random.random_range(1000..6000)
            ),
        ),
        8 => {
            let job = JOBS[random.random_range(0..JOBS.len())];
            (
                78, // cron.info
                "CRON",
                format!(
                    "({user}) CMD (/usr/local/bin/{job}.sh --quiet >> /var/log/{job}.log 2>&1)"
                ),
            )
        }
        _ => (
            4, // kern.warning
            "kernel",
            format!(
                "[UFW BLOCK] IN=eth0 OUT= SRC={address} DST=10.0.{}.{} LEN=60 TOS=0x00 TTL={} ID={} DF PROTO=TCP SPT={port} DPT=22 SYN URGP=0",
                random.random_range(0..4),
                random.random_range(1..255),
                random.random_range(40..64),
                random.random_range(1..65_535)
            ),
        ),
    };
    // Times a little before now, as from live senders.
    let time = now - jiff::SignedDuration::from_micros(random.random_range(0..5_000_000));
    let rfc5424 = match format {
        Format::Rfc3164 => false,
        Format::Rfc5424 => true,
        Format::Mixed => index % 2 == 1,
    };
    let line = if rfc5424 {
        let structured = match random.random_range(0..3) {
            0 => "-".to_owned(),
            1 => "[timeQuality tzKnown=\"1\" isSynced=\"1\" syncAccuracy=\"89000\"]".to_owned(),
            _ => format!(
                "[meta sequenceId=\"{}\"][origin ip=\"{address}\"]",
                index + 1
            ),
        };
        format!(
            "<{priority}>1 {} {host} {program} {pid} - {structured} {text}",
            time.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        )
    } else {
        let zoned = time.to_zoned(jiff::tz::TimeZone::UTC);
        format!(
            "<{priority}>{} {host} {program}[{pid}]: {text}",
            zoned.strftime("%b %e %H:%M:%S")
        )
    };
    line.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_realistic_sized_and_parse_as_their_format() {
        let mut random = StdRng::seed_from_u64(5514);
        let now: jiff::Timestamp = "2026-11-22T10:15:01Z".parse().expect("time");
        let context = isms_syslog::ParseContext::utc(now);
        let mut total = 0;
        for index in 0..2000 {
            let line = sample_message(&mut random, Format::Mixed, index, now);
            total += line.len();
            assert!((100..=320).contains(&line.len()), "{}", line.len());
            let message = isms_syslog::parse(&line, &context);
            let expected = if index % 2 == 1 {
                isms_syslog::SyslogFormat::Rfc5424
            } else {
                isms_syslog::SyslogFormat::Rfc3164
            };
            let text = String::from_utf8_lossy(&line);
            assert_eq!(message.format, expected, "{text}");
            assert!(
                message.app_name.is_some() && message.hostname.is_some(),
                "{text}"
            );
            assert!(message.timestamp.is_some(), "{text}");
            assert!(!message.invalid_utf8);
        }
        let average = total / 2000;
        assert!((170..=230).contains(&average), "average {average} bytes");
    }

    #[test]
    fn the_metric_is_summed_over_its_labels_and_not_confused_with_others() {
        let text = "# TYPE isms_syslog_messages_total counter\n\
                    isms_syslog_messages_total{endpoint=\"syslog:udp:5514\"} 120\n\
                    isms_syslog_messages_total{endpoint=\"syslog:tcp:5514\"} 30\n\
                    isms_syslog_messages_total_other 7\n";
        assert_eq!(metric_sum(text, "isms_syslog_messages_total"), Some(150));
        assert_eq!(metric_sum("", "isms_syslog_messages_total"), None);
    }
}
