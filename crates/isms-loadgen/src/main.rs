//! `isms-loadgen`: the load generator and benchmark driver behind BENCHMARKS.md.
//!
//! Performance is measured by this program, never by timed tests. Every mode is bounded (event count or
//! seconds) and refuses any target that is not a loopback address, so it can only load the local machine.
//!
//! - `http-ingest`: durable HTTP ingest throughput, MozDef-shaped events of about 500 bytes in batches.
//! - `http-single`: single-event POSTs per second.
//! - `fill-store`: writes N events straight into a data directory's store (to build a big store fast).
//! - `search`: search latency percentiles over a store, for given queries.
//! - `decode-cpu`: CPU per event of the ingest path before the store writes (JSON parse, normalization,
//!   index terms, document text), in one thread, without HTTP or SQLite.
//! - `syslog`: syslog messages over UDP or TCP, and how fast they are stored: by isms (watched through
//!   its HTTP API) or by another daemon writing to a file (see `syslog.rs`; `scripts/bench-syslog`
//!   compares isms with rsyslog).
//! - `detect`: detection throughput (in process on one thread, and through `isms replay`) over
//!   generated sshd lines and rules, and memory per tracked entity (see `detect.rs`).
//! - `detect-peers`: isms replay against `sec` and `fail2ban-regex` on the same lines with equivalent
//!   rules: the offenders each finds and the time each takes (see `peers.rs`).
//! - `generators`: how fast instance changes reach alert generators that long-poll the collector,
//!   and what N waiting pulls cost it (see `generators.rs`).
mod detect;
mod generators;
mod peers;
mod sigma;
mod syslog;

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use isms_event::{Event, Origin, normalize};
use isms_store::sqlite::{SqliteOptions, SqliteStore};
use isms_store::{EventFilter, SearchRequest, SortOrder, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "isms-loadgen",
    about = "bounded load generator for isms benchmarks (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// POST batches of events to /events and report sustained events per second.
    HttpIngest {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long, env = "ISMS_KEY", hide_env_values = true)]
        key: String,
        /// Total events to send.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Events per request.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Requests in flight.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Event times are spread at random over this many seconds before now: 3600 models a backfill
        /// (an hour of logs arriving out of order); a few seconds models live senders.
        #[arg(long, default_value_t = 3600)]
        time_spread_seconds: u64,
        /// Events per second over all requests (0: flat out). With detection on, the server's
        /// receipt-to-engine delay is reported from its /metrics at the end.
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
    /// POST one event per request for a number of seconds; report requests per second.
    HttpSingle {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long, env = "ISMS_KEY", hide_env_values = true)]
        key: String,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Write events straight into the store of a data directory (builds a large store quickly).
    FillStore {
        #[arg(long)]
        data: std::path::PathBuf,
        #[arg(long, default_value_t = 5_000_000)]
        events: u64,
        /// Event times are spread over this many days before now.
        #[arg(long, default_value_t = 30)]
        days: u64,
    },
    /// Run queries repeatedly against a data directory's store; report latency percentiles and disk use.
    Search {
        #[arg(long)]
        data: std::path::PathBuf,
        /// Queries to time (repeatable).
        #[arg(long = "query", required = true)]
        queries: Vec<String>,
        #[arg(long, default_value_t = 30)]
        runs: usize,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Time the per-event CPU work between an HTTP body and the store's writer, stage by stage.
    DecodeCpu {
        #[arg(long, default_value_t = 200_000)]
        events: u64,
    },
    /// Send syslog messages over UDP or TCP; report messages per second sent and stored, and the loss.
    Syslog(syslog::SyslogArgs),
    /// Detection throughput over generated sshd lines and rules, and memory per tracked entity.
    Detect(detect::DetectArgs),
    /// isms replay against sec and fail2ban-regex on the same sshd lines and equivalent rules.
    DetectPeers(peers::PeersArgs),
    /// isms replay against the rsigma command-line tool on the same Sigma rules and JSON events.
    SigmaPeers(sigma::SigmaPeersArgs),
    /// Delivery latency of instance changes to N long-polling alert generators, and the
    /// collector's memory for their waiting pulls.
    Generators(generators::GeneratorsArgs),
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.mode {
            Mode::HttpIngest {
                url,
                key,
                events,
                batch,
                concurrency,
                time_spread_seconds,
                rate,
            } => {
                http_ingest(
                    &url,
                    &key,
                    events,
                    batch,
                    concurrency,
                    time_spread_seconds,
                    rate,
                )
                .await
            }
            Mode::HttpSingle {
                url,
                key,
                seconds,
                concurrency,
            } => http_single(&url, &key, seconds, concurrency).await,
            Mode::FillStore { data, events, days } => fill_store(&data, events, days).await,
            Mode::Search {
                data,
                queries,
                runs,
                limit,
            } => search(&data, &queries, runs, limit).await,
            Mode::DecodeCpu { events } => decode_cpu(events),
            Mode::Syslog(args) => syslog::run(args).await,
            Mode::Detect(args) => tokio::task::block_in_place(|| detect::run(args)),
            Mode::DetectPeers(args) => tokio::task::block_in_place(|| peers::run(args)),
            Mode::SigmaPeers(args) => tokio::task::block_in_place(|| sigma::run(args)),
            Mode::Generators(args) => generators::run(args).await,
        }
    })
}

fn ensure_loopback(url: &str) -> anyhow::Result<()> {
    let without_scheme = url.split("://").nth(1).unwrap_or(url);
    let authority = without_scheme.split('/').next().unwrap_or_default();
    let addresses: Vec<_> = authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .collect();
    if addresses.is_empty() || !addresses.iter().all(|address| address.ip().is_loopback()) {
        bail!("refusing to load {url}: isms-loadgen only targets loopback addresses");
    }
    Ok(())
}

/// A MozDef-shaped authentication event of about 500 bytes, from a deterministic generator.
pub fn sample_event(random: &mut StdRng, time_micros: i64) -> Value {
    const WORDS: [&str; 16] = [
        "failed",
        "accepted",
        "password",
        "publickey",
        "invalid",
        "user",
        "session",
        "opened",
        "closed",
        "connection",
        "reset",
        "timeout",
        "sudo",
        "command",
        "authentication",
        "preauth",
    ];
    let user = format!("user{:05}", zipf_like(random, 50_000));
    let source = format!(
        "10.{}.{}.{}",
        random.random_range(0..4),
        random.random_range(0..256),
        random.random_range(1..255)
    );
    let host = format!("host{:03}.example.com", random.random_range(0..200));
    let words: Vec<&str> = (0..6)
        .map(|_| WORDS[random.random_range(0..WORDS.len())])
        .collect();
    let success = random.random_bool(0.3);
    json!({
        "utctimestamp": isms_event::format_time(time_micros),
        "hostname": host,
        "processname": "sshd",
        "processid": random.random_range(100..65_000),
        "severity": if success { "INFO" } else { "WARNING" },
        "category": "authentication",
        "source": "/var/log/auth.log",
        "summary": format!("{} {} for {user} from {source} port {} ssh2", words[..3].join(" "), words[3], random.random_range(1024..65_535)),
        "tags": ["sshd", "linux", words[4]],
        "details": {
            "username": user,
            "sourceipaddress": source,
            "sourceport": random.random_range(1024..65_535),
            "destinationport": 22,
            "success": success,
            "authmethod": if random.random_bool(0.5) { "password" } else { "publickey" },
            "session": format!("{:016x}", random.random::<u64>()),
            "note": words[5],
        }
    })
}

/// Runs the stages of the ingest path the tokio side does for each event and prints the CPU each takes.
fn decode_cpu(events: u64) -> anyhow::Result<()> {
    let mut random = StdRng::seed_from_u64(7);
    let now = jiff::Timestamp::now().as_microsecond();
    let lines: Vec<Vec<u8>> = (0..events)
        .map(|_| {
            let time = now - random.random_range(0..3_600_000_000);
            serde_json::to_vec(&sample_event(&mut random, time)).expect("json")
        })
        .collect();
    let origin = Origin {
        peer: Some("127.0.0.1:50000".into()),
        endpoint: "http:/events".into(),
        key_name: Some("bench".into()),
    };
    let received = jiff::Timestamp::now();
    let started = Instant::now();
    let parsed: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_slice(line))
        .collect::<Result<_, _>>()?;
    let parse = started.elapsed();
    let started = Instant::now();
    let normalized: Vec<Event> = parsed
        .into_iter()
        .map(|raw| normalize(raw, &origin, received))
        .collect::<Result<_, _>>()?;
    let normalization = started.elapsed();
    let started = Instant::now();
    let mut term_writer = isms_store::terms::TermWriter::default();
    let mut term_bytes = 0usize;
    for event in &normalized {
        term_bytes += term_writer.terms_of(&event.document).len();
    }
    let terms = started.elapsed();
    let started = Instant::now();
    let mut document_bytes = 0usize;
    for event in &normalized {
        document_bytes += event.to_json_line().len();
    }
    let serialization = started.elapsed();
    let per_event = |duration: Duration| duration.as_secs_f64() * 1e6 / events as f64;
    println!(
        "decode-cpu: {events} events, µs per event: parse {:.2}, normalize {:.2}, terms {:.2} ({} bytes), document {:.2} ({} bytes); total {:.2}",
        per_event(parse),
        per_event(normalization),
        per_event(terms),
        term_bytes / events.max(1) as usize,
        per_event(serialization),
        document_bytes / events.max(1) as usize,
        per_event(parse + normalization + terms + serialization),
    );
    Ok(())
}

/// Skewed choice in 0..n: a few values are common, most are rare (like user names in real logs).
fn zipf_like(random: &mut StdRng, n: u64) -> u64 {
    let uniform: f64 = random.random();
    ((n as f64).powf(uniform) - 1.0) as u64 % n
}

async fn http_ingest(
    url: &str,
    key: &str,
    events: u64,
    batch: usize,
    concurrency: usize,
    time_spread_seconds: u64,
    rate: u64,
) -> anyhow::Result<()> {
    ensure_loopback(url)?;
    let time_spread_micros = (time_spread_seconds.max(1) * 1_000_000) as i64;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let endpoint = format!("{}/events", url.trim_end_matches('/'));
    let batches = events.div_ceil(batch as u64);
    let next_batch = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let mut body_bytes = 0u64;
    // Bodies are built before the clock starts, so only the server is measured. Each event's time is
    // "send time minus a random lag": the bodies remember where every utctimestamp is, and the fixed-width
    // time text is rewritten in place just before a body is sent, so times advance with the clock as
    // they do for live senders.
    let mut random = StdRng::seed_from_u64(7);
    let now = jiff::Timestamp::now().as_microsecond();
    let prepared: Arc<Vec<PreparedBody>> = Arc::new(
        (0..batches.min(64))
            .map(|_| {
                let mut body = Vec::with_capacity(batch * 560);
                let mut times = Vec::with_capacity(batch);
                for _ in 0..batch {
                    let lag = random.random_range(0..time_spread_micros);
                    let time_text = isms_event::format_time(now - lag);
                    let start = body.len();
                    serde_json::to_writer(&mut body, &sample_event(&mut random, now - lag))
                        .expect("json");
                    let offset = start
                        + find_bytes(&body[start..], time_text.as_bytes())
                            .expect("the event holds its time text");
                    times.push((offset, lag));
                    body.push(b'\n');
                }
                body_bytes += body.len() as u64;
                PreparedBody { body, times }
            })
            .collect(),
    );
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, endpoint, key, next_batch, sent, prepared) = (
            client.clone(),
            endpoint.clone(),
            key.to_string(),
            next_batch.clone(),
            sent.clone(),
            prepared.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let index = next_batch.fetch_add(1, Ordering::Relaxed);
                if index >= batches {
                    return Ok::<_, anyhow::Error>(());
                }
                if rate > 0 {
                    let due = started
                        + Duration::from_secs_f64((index * batch as u64) as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let body = prepared[(index % prepared.len() as u64) as usize].stamped();
                let accepted = post_events(&client, &endpoint, &key, body).await?;
                sent.fetch_add(accepted, Ordering::Relaxed);
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = sent.load(Ordering::Relaxed);
    let average_event_bytes = body_bytes as f64 / (prepared.len() * batch) as f64;
    println!(
        "http-ingest: {accepted} events accepted in {elapsed:.2} s = {:.0} events/s (batch {batch}, concurrency {concurrency}, ~{average_event_bytes:.0} bytes/event, times spread over {time_spread_seconds} s)",
        accepted as f64 / elapsed
    );
    // Detection's delay, from each event's receipt to the engine, if the server runs detection.
    let metrics = client
        .get(format!("{}/metrics", url.trim_end_matches('/')))
        .send()
        .await?
        .text()
        .await?;
    if let Some(quantiles) =
        histogram_quantiles(&metrics, "isms_detect_lag_seconds", &[0.5, 0.99, 0.999])
    {
        println!("http-ingest: receipt to detection engine: {quantiles}");
    }
    Ok(())
}

/// Quantiles of a Prometheus histogram, as the upper bound of the bucket each falls in.
fn histogram_quantiles(metrics: &str, name: &str, quantiles: &[f64]) -> Option<String> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (bound, count) = rest.split_once("\"}")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|left, right| left.0.total_cmp(&right.0));
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let parts: Vec<String> = quantiles
        .iter()
        .map(|quantile| {
            let bound = buckets
                .iter()
                .find(|(_, count)| *count >= quantile * total)
                .map_or(f64::INFINITY, |(bound, _)| *bound);
            format!("p{} <= {} ms", quantile * 100.0, bound * 1000.0)
        })
        .collect();
    Some(format!("{} ({total} events)", parts.join(", ")))
}

/// A request body and, for each event in it, where its utctimestamp text starts and how far before the
/// send time it lies.
struct PreparedBody {
    body: Vec<u8>,
    times: Vec<(usize, i64)>,
}

impl PreparedBody {
    /// A copy of the body with every event time set to now minus its lag.
    fn stamped(&self) -> Vec<u8> {
        let mut body = self.body.clone();
        let now = jiff::Timestamp::now().as_microsecond();
        for (offset, lag) in &self.times {
            let text = isms_event::format_time(now - lag);
            body[*offset..*offset + text.len()].copy_from_slice(text.as_bytes());
        }
        body
    }
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

async fn http_single(url: &str, key: &str, seconds: u64, concurrency: usize) -> anyhow::Result<()> {
    ensure_loopback(url)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let endpoint = format!("{}/events", url.trim_end_matches('/'));
    let deadline = Instant::now() + Duration::from_secs(seconds.clamp(1, 600));
    let done = Arc::new(AtomicU64::new(0));
    // Bodies are built before the clock starts, so only the server is measured.
    let mut random = StdRng::seed_from_u64(11);
    let now = jiff::Timestamp::now().as_microsecond();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..1024)
            .map(|_| serde_json::to_vec(&sample_event(&mut random, now)).expect("json"))
            .collect(),
    );
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker_index in 0..concurrency {
        let (client, endpoint, key, done, bodies) = (
            client.clone(),
            endpoint.clone(),
            key.to_string(),
            done.clone(),
            bodies.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut position = worker_index;
            while Instant::now() < deadline {
                let body = bodies[position % bodies.len()].clone();
                position += 1;
                post_events(&client, &endpoint, &key, body).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let requests = done.load(Ordering::Relaxed);
    println!(
        "http-single: {requests} single-event POSTs in {elapsed:.2} s = {:.0} requests/s (concurrency {concurrency})",
        requests as f64 / elapsed
    );
    Ok(())
}

/// POSTs one body to `/events`; returns how many events the server accepted.
async fn post_events(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    body: Vec<u8>,
) -> anyhow::Result<u64> {
    let response = client
        .post(endpoint)
        .bearer_auth(key)
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let answer: Value = response.json().await?;
    if !status.is_success() {
        bail!("server answered {status}: {answer}");
    }
    Ok(answer["accepted"].as_u64().unwrap_or(0))
}

async fn fill_store(data: &std::path::Path, events: u64, days: u64) -> anyhow::Result<()> {
    let mut options = SqliteOptions::new(data.join("isms.db"));
    options.durability = isms_store::sqlite::Durability::Normal;
    let store = Arc::new(SqliteStore::open(options).await?);
    let origin = Origin {
        peer: Some("127.0.0.1:0".into()),
        endpoint: "fill-store".into(),
        key_name: Some("loadgen".into()),
    };
    let now = jiff::Timestamp::now();
    let span = (days.max(1) * 86_400_000_000) as i64;
    let started = Instant::now();
    let mut random = StdRng::seed_from_u64(42);
    let mut written = 0u64;
    let mut in_flight: Option<tokio::task::JoinHandle<Result<(), isms_store::StoreError>>> = None;
    while written < events {
        let count = (events - written).min(20_000);
        let batch: Vec<Event> = (0..count)
            .map(|index| {
                // Roughly increasing times with jitter, like a real feed.
                let position = (written + index) as i64 * span / events as i64;
                let time =
                    now.as_microsecond() - span + position + random.random_range(0..60_000_000);
                normalize(sample_event(&mut random, time), &origin, now)
                    .expect("sample events are valid")
            })
            .collect();
        // Keep one append in flight while the next batch is generated.
        if let Some(previous) = in_flight.take() {
            previous.await??;
        }
        let store_for_append = store.clone();
        in_flight = Some(tokio::spawn(
            async move { store_for_append.append(batch).await },
        ));
        written += count;
        if written % 500_000 < 20_000 {
            eprintln!(
                "fill-store: {written} events, {:.0} events/s",
                written as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    if let Some(previous) = in_flight.take() {
        previous.await??;
    }
    let health = store.health().await?;
    println!(
        "fill-store: {written} events in {:.1} s; store {} bytes = {:.0} bytes/event",
        started.elapsed().as_secs_f64(),
        health.bytes,
        health.bytes as f64 / health.events.max(1) as f64
    );
    Ok(())
}

async fn search(
    data: &std::path::Path,
    queries: &[String],
    runs: usize,
    limit: usize,
) -> anyhow::Result<()> {
    let store = SqliteStore::open(SqliteOptions::new(data.join("isms.db"))).await?;
    let health = store.health().await?;
    println!(
        "search: store of {} events, {} bytes ({:.0} bytes/event)",
        health.events,
        health.bytes,
        health.bytes as f64 / health.events.max(1) as f64
    );
    for query in queries {
        let predicate =
            isms_query::parse(query).map_err(|error| anyhow::anyhow!("{query}: {error}"))?;
        let request = SearchRequest {
            filter: EventFilter::matching(predicate),
            limit,
            cursor: None,
            sort: SortOrder::Desc,
        };
        let mut timings = Vec::with_capacity(runs);
        let mut found = 0;
        for _ in 0..runs.max(1) {
            let started = Instant::now();
            found = store.search(&request).await?.events.len();
            timings.push(started.elapsed());
        }
        timings.sort();
        let percentile = |p: f64| {
            timings[((timings.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0
        };
        println!(
            "search {query:?}: {found} events per page; p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms over {} runs",
            percentile(0.5),
            percentile(0.95),
            percentile(1.0),
            timings.len()
        );
    }
    Ok(())
}
