//! `generators` mode: how fast the collector delivers instance changes to alert generators that
//! long-poll for them, and what holding many of those polls open costs the collector.
//!
//! Why: a generator never opens a port; it asks the collector for the changes after the last one
//! it applied (`GET /api/generators/{name}/changes?after=N&wait=S`) and the collector holds the
//! request open until there is one. So the delay between an operator's instantiation and the
//! generator starting to run it is the collector's wake-up path (the instantiation's commit, the
//! wake of that generator's waiting pull, the pull's read and its activity-log entry), and every
//! registered generator costs an open connection and a waiting task. This mode measures both with
//! the real client library (`isms_generator::GeneratorClient`), the way a host agent talks.
//!
//! A run: register N generators (`lg-<random hex>-<i>`, unique per run, each with its own key, an
//! alert group and an alert class `TCP_MISSING` with a required port), start one task per
//! generator that pulls with `wait=25` and acknowledges what it gets, wait until every pull is open
//! (and, with `--server-pid`, until the collector holds the connections and has gone idle: its
//! RSS then shows what N waiting pulls cost), then make M instantiations with the operator's key,
//! round-robin over the generators, C in flight. Each instantiation's id is chosen here
//! (`c<k>`), so the moment just before its request is sent is recorded under (generator, id)
//! before the collector knows of it; the generator that pulls it takes the time its pull
//! returned. Reported: the registration time, instantiations per second, delivery latency
//! percentiles, the count delivered (every one must arrive within 30 s of the last
//! instantiation, or the run fails), and the collector's RSS. The generators are deleted at the
//! end unless `--keep`.
//!
//! Bounded: at most 5,000 generators and 1,000,000 instantiations, loopback targets only, every
//! request under a timeout.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::future::try_join_all;
use isms_generator::{GeneratorClient, Registration};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// The options of `isms-loadgen generators`.
#[derive(Debug, clap::Args)]
pub struct GeneratorsArgs {
    /// The collector (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An operator's key (registers the generators and instantiates).
    #[arg(long, env = "ISMS_KEY", hide_env_values = true)]
    key: String,
    /// Generators registered, each holding one long-poll open (1 to 5,000).
    #[arg(long, default_value_t = 200)]
    generators: usize,
    /// Instantiations made in all, round-robin over the generators (at least one per generator,
    /// at most 1,000,000).
    #[arg(long, default_value_t = 2000)]
    changes: u64,
    /// Instantiations (and registrations, and deletions) in flight (1 to 256).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Do not acknowledge the changes (a real generator acknowledges each one it applied).
    #[arg(long)]
    no_ack: bool,
    /// Register the generators with a push URL (a listener of this process on loopback) and take
    /// the changes the collector pushes, instead of pulling them.
    #[arg(long)]
    push: bool,
    /// Keep the generators (and their instances) instead of deleting them at the end.
    #[arg(long)]
    keep: bool,
    /// The collector's process id: its RSS (/proc/PID/status VmRSS) is read before the pulls
    /// start, once every pull waits, and at the end.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// Most generators one run registers.
const MAX_GENERATORS: usize = 5000;

/// Most instantiations one run makes.
const MAX_CHANGES: u64 = 1_000_000;

/// Most requests in flight on the operator's side.
const MAX_CONCURRENCY: usize = 256;

/// How long each pull asks the collector to wait for a change (the collector allows up to 30 s).
const PULL_WAIT_SECONDS: u64 = 25;

/// How long a pull may take beyond its wait before it counts as hung.
const PULL_GRACE: Duration = Duration::from_secs(15);

/// Every other request (registration, instantiation, acknowledgement, deletion).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Every change must have been delivered this long after the last instantiation returned.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(30);

/// Longest wait for every pull to be open and the collector to go idle before instantiating.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The group and class every generator registers.
const GROUP_NAME: &str = "net";
const CLASS_NAME: &str = "TCP_MISSING";

/// What the generator tasks and the operator's workers share.
#[derive(Default)]
struct Deliveries {
    /// When each instantiation's request was about to be sent, by (generator index, instance id);
    /// removed by the generator that pulled it, so what remains was not delivered.
    sent_at: Mutex<HashMap<(usize, String), Instant>>,
    /// Generator tasks whose first pull has been sent.
    pulls_started: AtomicUsize,
    /// Instantiations the collector has answered.
    instantiated: AtomicU64,
    /// Changes delivered that were sent in this run, once each.
    delivered: AtomicU64,
}

/// What one generator task saw.
#[derive(Default)]
struct GeneratorOutcome {
    /// Instantiate request sent to pull returned, per change.
    latencies: Vec<Duration>,
    pulls: u64,
    /// Pulls that returned no change (the wait ran out).
    empty_pulls: u64,
    acknowledgements: u64,
    /// Changes that were not (or no longer) expected: delivered twice, or not made by this run.
    unexpected: u64,
}

pub async fn run(args: GeneratorsArgs) -> anyhow::Result<()> {
    crate::ensure_loopback(&args.url)?;
    if !(1..=MAX_GENERATORS).contains(&args.generators) {
        bail!(
            "--generators: 1 to {MAX_GENERATORS}, found {}",
            args.generators
        );
    }
    if !(1..=MAX_CHANGES).contains(&args.changes) {
        bail!("--changes: 1 to {MAX_CHANGES}, found {}", args.changes);
    }
    if args.changes < args.generators as u64 {
        bail!(
            "--changes ({}) must be at least --generators ({}): every generator holds a pull open until it has had its share",
            args.changes,
            args.generators
        );
    }
    if !(1..=MAX_CONCURRENCY).contains(&args.concurrency) {
        bail!(
            "--concurrency: 1 to {MAX_CONCURRENCY}, found {}",
            args.concurrency
        );
    }
    let server = args.server_pid.map(ServerProcess::new).transpose()?;
    let run_id = format!("{:08x}", StdRng::from_os_rng().random::<u32>());
    let operator =
        GeneratorClient::new(&args.url, &args.key).map_err(|error| anyhow::anyhow!("{error}"))?;
    let operator_http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let names: Vec<String> = (0..args.generators)
        .map(|index| format!("lg-{run_id}-{index}"))
        .collect();
    println!(
        "generators: run {run_id}: {} generators, {} instantiations ({} in flight), {}acknowledging, against {}",
        args.generators,
        args.changes,
        args.concurrency,
        if args.no_ack { "not " } else { "" },
        args.url
    );
    let registered: Arc<Mutex<Vec<String>>> = Arc::default();
    let result = measure(
        &args,
        &operator,
        &operator_http,
        &names,
        registered.clone(),
        server.as_ref(),
    )
    .await;
    let registered = std::mem::take(
        &mut *registered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    );
    let deletion = if args.keep {
        println!(
            "generators: kept {} generators lg-{run_id}-*",
            registered.len()
        );
        None
    } else {
        match delete_generators(&operator, registered, args.concurrency).await {
            Ok(deletion) => Some(deletion),
            // A failed measurement says more than a failed clean-up after it.
            Err(error) if result.is_err() => {
                eprintln!("generators: deleting the generators failed too: {error:#}");
                None
            }
            Err(error) => return Err(error),
        }
    };
    if let Some((deleted, elapsed)) = deletion {
        println!(
            "generators: deleted {deleted} generators in {:.2} s = {:.1} generators/s",
            elapsed.as_secs_f64(),
            deleted as f64 / elapsed.as_secs_f64().max(1e-9)
        );
    }
    let mut figures = result?;
    if let Some((_, elapsed)) = deletion {
        figures["delete_seconds"] = json!(round(elapsed.as_secs_f64(), 3));
    }
    println!("{figures}");
    Ok(())
}

/// Registration, the open pulls, the instantiations and their delivery; the figures as JSON.
async fn measure(
    args: &GeneratorsArgs,
    operator: &GeneratorClient,
    operator_http: &reqwest::Client,
    names: &[String],
    registered: Arc<Mutex<Vec<String>>>,
    server: Option<&ServerProcess>,
) -> anyhow::Result<Value> {
    let generator_count = names.len();
    let deliveries = Arc::new(Deliveries::default());
    let _progress = AbortOnDrop(tokio::spawn(report_progress(
        registered.clone(),
        deliveries.clone(),
        generator_count,
        args.changes,
    )));
    // ---- registration
    let registration_started = Instant::now();
    let receiver = match args.push {
        true => Some(PushReceiver::start(!args.no_ack, deliveries.clone()).await?),
        false => None,
    };
    let push_base = receiver.as_ref().map(|receiver| receiver.base.clone());
    let keys = register_generators(
        operator,
        names,
        args.concurrency,
        registered,
        push_base.as_deref(),
    )
    .await?;
    let registration = registration_started.elapsed();
    println!(
        "generators: registered {generator_count} generators (each: key, group, class) in {:.2} s = {:.1} generators/s",
        registration.as_secs_f64(),
        generator_count as f64 / registration.as_secs_f64().max(1e-9)
    );
    let rss_before_kib = match server {
        Some(server) => {
            server.wait_idle(SETTLE_TIMEOUT).await?;
            Some(server.settled_rss_kib(Duration::from_secs(60)).await?)
        }
        None => None,
    };
    // ---- one pulling task per generator
    let base_share = args.changes / generator_count as u64;
    let extra = (args.changes % generator_count as u64) as usize;
    let mut tasks = tokio::task::JoinSet::new();
    let pulls_opening = Instant::now();
    if let Some(receiver) = &receiver {
        receiver.take_generators(operator, names, &keys);
        let receiver = receiver.clone();
        let changes = args.changes;
        tasks.spawn(async move { Ok(receiver.outcome_when_done(changes).await) });
        deliveries
            .pulls_started
            .store(generator_count, Ordering::Relaxed);
    }
    for (index, (name, key)) in names.iter().zip(&keys).enumerate() {
        if receiver.is_some() {
            break;
        }
        let share = base_share + u64::from(index < extra);
        let client = operator.with_key(key);
        let name = name.clone();
        let deliveries = deliveries.clone();
        let acknowledge = !args.no_ack;
        tasks.spawn(async move {
            pull_until_done(client, &name, index, share, acknowledge, &deliveries)
                .await
                .with_context(|| format!("generator {name}"))
        });
    }
    // Every task has sent its first pull; with the collector's pid, its sockets show the
    // connections held and its CPU going quiet shows every pull has reached its wait.
    while deliveries.pulls_started.load(Ordering::Relaxed) < generator_count {
        if let Some(result) = tasks.try_join_next() {
            result??;
            bail!("a generator stopped before any instantiation");
        }
        if pulls_opening.elapsed() > SETTLE_TIMEOUT {
            bail!("the generators' first pulls were not all sent within {SETTLE_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut server_sockets = None;
    match server {
        Some(server) => {
            let held = if args.push { 0 } else { generator_count };
            server_sockets = Some(server.wait_sockets(held, SETTLE_TIMEOUT).await?);
            server.wait_idle(SETTLE_TIMEOUT).await?;
        }
        None => tokio::time::sleep(Duration::from_secs(2)).await,
    }
    let pulls_open = pulls_opening.elapsed();
    if let Some(result) = tasks.try_join_next() {
        result??;
        bail!("a generator stopped before any instantiation");
    }
    // Read before the first pulls' waits run out (they all started together, so they would all
    // come back at once).
    let rss_waiting_kib = match server {
        Some(server) => {
            let before_first_timeout =
                Duration::from_secs(PULL_WAIT_SECONDS - 3).saturating_sub(pulls_opening.elapsed());
            Some(server.settled_rss_kib(before_first_timeout).await?)
        }
        None => None,
    };
    match (rss_before_kib, rss_waiting_kib, server_sockets) {
        (Some(before), Some(waiting), Some(sockets)) => println!(
            "generators: {generator_count} pulls waiting after {:.2} s; collector RSS {} before the pulls, {} with them waiting ({:+.1} KiB per waiting pull; the collector holds {sockets} sockets)",
            pulls_open.as_secs_f64(),
            format_kib(before),
            format_kib(waiting),
            (waiting as f64 - before as f64) / generator_count as f64
        ),
        _ => println!(
            "generators: {generator_count} pulls sent, waited {:.2} s for them to settle (no --server-pid: no RSS)",
            pulls_open.as_secs_f64()
        ),
    }
    // ---- instantiations
    let instantiation_started = Instant::now();
    let round_trips = instantiate_all(
        operator_http,
        &args.url,
        &args.key,
        names,
        args.changes,
        args.concurrency,
        &deliveries,
    )
    .await?;
    let instantiation = instantiation_started.elapsed();
    let last_instantiated = Instant::now();
    let round_trip_ms = |fraction: f64| percentile(&round_trips, fraction).as_secs_f64() * 1000.0;
    println!(
        "generators: {} instantiations in {:.2} s = {:.1} instantiations/s ({} in flight); request round trip p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        args.changes,
        instantiation.as_secs_f64(),
        args.changes as f64 / instantiation.as_secs_f64().max(1e-9),
        args.concurrency,
        round_trip_ms(0.50),
        round_trip_ms(0.99),
        round_trip_ms(1.0)
    );
    // ---- delivery
    let deadline = tokio::time::Instant::from_std(last_instantiated + DELIVERY_DEADLINE);
    let mut outcomes = Vec::with_capacity(generator_count);
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(result)) => outcomes.push(result??),
            Ok(None) => break,
            Err(_) => {
                tasks.abort_all();
                let undelivered: Vec<(usize, String)> = deliveries
                    .sent_at
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .keys()
                    .cloned()
                    .collect();
                let examples: Vec<String> = undelivered
                    .iter()
                    .take(10)
                    .map(|(index, id)| format!("{}/{id}", names[*index]))
                    .collect();
                bail!(
                    "{} of {} changes were not delivered within {DELIVERY_DEADLINE:?} of the last instantiation ({} delivered); e.g. {}",
                    undelivered.len(),
                    args.changes,
                    deliveries.delivered.load(Ordering::Relaxed),
                    examples.join(", ")
                );
            }
        }
    }
    let delivery_done = last_instantiated.elapsed();
    let delivered = deliveries.delivered.load(Ordering::Relaxed);
    if delivered != args.changes {
        bail!(
            "{delivered} changes delivered, {} made: the generators stopped without all of theirs",
            args.changes
        );
    }
    let mut latencies: Vec<Duration> = outcomes
        .iter()
        .flat_map(|outcome| outcome.latencies.iter().copied())
        .collect();
    latencies.sort_unstable();
    let percentile_ms = |fraction: f64| percentile(&latencies, fraction).as_secs_f64() * 1000.0;
    let pulls: u64 = outcomes.iter().map(|outcome| outcome.pulls).sum();
    let empty_pulls: u64 = outcomes.iter().map(|outcome| outcome.empty_pulls).sum();
    let acknowledgements: u64 = outcomes
        .iter()
        .map(|outcome| outcome.acknowledgements)
        .sum();
    let unexpected: u64 = outcomes.iter().map(|outcome| outcome.unexpected).sum();
    println!(
        "generators: delivery latency (instantiate sent to pull returned or push arrived): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile_ms(0.50),
        percentile_ms(0.90),
        percentile_ms(0.99),
        percentile_ms(1.0)
    );
    println!(
        "generators: {delivered} of {} changes delivered (the last {:.2} s after the last instantiation) in {pulls} {} ({empty_pulls} empty, {:.2} changes per one that had some), {acknowledgements} acknowledged",
        args.changes,
        delivery_done.as_secs_f64(),
        if args.push { "pushes" } else { "pulls" },
        delivered as f64 / (pulls - empty_pulls).max(1) as f64
    );
    if unexpected > 0 && args.push {
        println!(
            "generators: {unexpected} changes were pushed again before their acknowledgement landed (a push carries every change not acknowledged)"
        );
    } else if unexpected > 0 {
        eprintln!(
            "generators: WARNING: {unexpected} changes were delivered that were not expected (delivered twice, or not made by this run)"
        );
    }
    let rss_after_kib = server.map(ServerProcess::rss_kib).transpose()?;
    let rss_peak_kib = server.map(ServerProcess::peak_rss_kib).transpose()?;
    if let (Some(after), Some(peak)) = (rss_after_kib, rss_peak_kib) {
        println!(
            "generators: collector RSS after the deliveries: {}; its peak since it started: {}",
            format_kib(after),
            format_kib(peak)
        );
    }
    Ok(json!({
        "mode": "generators",
        "generators": generator_count,
        "changes": args.changes,
        "concurrency": args.concurrency,
        "acknowledge": !args.no_ack,
        "delivery": if args.push { "push" } else { "pull" },
        "register_seconds": round(registration.as_secs_f64(), 3),
        "register_per_second": round(generator_count as f64 / registration.as_secs_f64().max(1e-9), 1),
        "pulls_open_seconds": round(pulls_open.as_secs_f64(), 3),
        "instantiate_seconds": round(instantiation.as_secs_f64(), 3),
        "instantiations_per_second": round(args.changes as f64 / instantiation.as_secs_f64().max(1e-9), 1),
        "instantiate_round_trip_ms": {
            "p50": round(round_trip_ms(0.50), 2),
            "p99": round(round_trip_ms(0.99), 2),
            "max": round(round_trip_ms(1.0), 2),
        },
        "latency_ms": {
            "p50": round(percentile_ms(0.50), 2),
            "p90": round(percentile_ms(0.90), 2),
            "p99": round(percentile_ms(0.99), 2),
            "max": round(percentile_ms(1.0), 2),
        },
        "delivered": delivered,
        "delivery_done_after_last_instantiation_seconds": round(delivery_done.as_secs_f64(), 3),
        "pulls": pulls,
        "empty_pulls": empty_pulls,
        "acknowledgements": acknowledgements,
        "unexpected": unexpected,
        "server_sockets_waiting": server_sockets,
        "server_rss_kib": {
            "before_pulls": rss_before_kib,
            "pulls_waiting": rss_waiting_kib,
            "after": rss_after_kib,
            "peak": rss_peak_kib,
        },
    }))
}

/// Registers the generators, each with its group and class, `concurrency` at a time; their
/// keys, in the order of `names`. Each registered name is added to `registered` at once, so a
/// failure part way still deletes what was made.
async fn register_generators(
    operator: &GeneratorClient,
    names: &[String],
    concurrency: usize,
    registered: Arc<Mutex<Vec<String>>>,
    push_base: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let next = AtomicUsize::new(0);
    let keys: Mutex<Vec<Option<String>>> = Mutex::new(vec![None; names.len()]);
    let worker = || async {
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(name) = names.get(index) else {
                return Ok::<_, anyhow::Error>(());
            };
            let registration = Registration {
                name: name.clone(),
                author: "isms-loadgen".to_owned(),
                push_url: push_base.map(|base| format!("{base}/{index}")),
                ..Registration::default()
            };
            let (_, key) = within(REQUEST_TIMEOUT, operator.register(&registration))
                .await
                .with_context(|| format!("registering generator {name}"))?;
            registered
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(name.clone());
            let generator = operator.with_key(&key);
            within(
                REQUEST_TIMEOUT,
                generator.register_group(
                    name,
                    json!({"name": GROUP_NAME, "description": "isms-loadgen: network checks"}),
                ),
            )
            .await
            .with_context(|| format!("registering the group of generator {name}"))?;
            within(
                REQUEST_TIMEOUT,
                generator.register_class(
                    name,
                    json!({
                        "name": CLASS_NAME,
                        "group": GROUP_NAME,
                        "description": "isms-loadgen: a TCP port that should be listening is not",
                        "syntax": [{"name": "port", "type": "port", "required": true}],
                    }),
                ),
            )
            .await
            .with_context(|| format!("registering the class of generator {name}"))?;
            keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner())[index] = Some(key);
        }
    };
    try_join_all((0..concurrency.min(names.len())).map(|_| worker())).await?;
    keys.into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .into_iter()
        .enumerate()
        .map(|(index, key)| key.with_context(|| format!("no key for generator {}", names[index])))
        .collect()
}

/// One generator: pulls (after the last version it had, waiting up to 25 s), takes the time each
/// change arrived, acknowledges it, until it has had `share` changes.
async fn pull_until_done(
    client: GeneratorClient,
    name: &str,
    index: usize,
    share: u64,
    acknowledge: bool,
    deliveries: &Deliveries,
) -> anyhow::Result<GeneratorOutcome> {
    let mut outcome = GeneratorOutcome {
        latencies: Vec::with_capacity(share as usize),
        ..GeneratorOutcome::default()
    };
    let mut after = 0;
    let mut seen = 0u64;
    deliveries.pulls_started.fetch_add(1, Ordering::Relaxed);
    while seen < share {
        let changes = within(
            Duration::from_secs(PULL_WAIT_SECONDS) + PULL_GRACE,
            client.pull_changes(name, after, PULL_WAIT_SECONDS),
        )
        .await
        .with_context(|| format!("pulling the changes after {after}"))?;
        let returned = Instant::now();
        outcome.pulls += 1;
        if changes.changes.is_empty() {
            outcome.empty_pulls += 1;
        }
        {
            let mut sent_at = deliveries
                .sent_at
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for change in &changes.changes {
                match sent_at.remove(&(index, change.id.clone())) {
                    Some(sent) => {
                        outcome
                            .latencies
                            .push(returned.saturating_duration_since(sent));
                        seen += 1;
                        deliveries.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    None => outcome.unexpected += 1,
                }
            }
        }
        if acknowledge {
            for change in &changes.changes {
                within(
                    REQUEST_TIMEOUT,
                    client.acknowledge(name, &change.id, change.version, None),
                )
                .await
                .with_context(|| {
                    format!(
                        "acknowledging instance {} version {}",
                        change.id, change.version
                    )
                })?;
                outcome.acknowledgements += 1;
            }
        }
        if changes.last_version < after {
            bail!(
                "the collector answered last_version {} to a pull after {after}",
                changes.last_version
            );
        }
        after = changes.last_version;
    }
    Ok(outcome)
}

/// The generators' side in `--push` mode: one listener on loopback takes every generator's pushes
/// (`/push/INDEX`), checks each signature with that generator's key, takes the time each change
/// first arrived and acknowledges every change over the API (a push carries every change not
/// acknowledged yet, so one may arrive again before its acknowledgement lands).
#[derive(Clone)]
struct PushReceiver {
    base: String,
    shared: Arc<PushShared>,
}

/// A generator in `--push` mode: its name, the client with its key, and its push signing key.
type PushedGenerator = (String, Arc<GeneratorClient>, [u8; 32]);

struct PushShared {
    acknowledge: bool,
    deliveries: Arc<Deliveries>,
    generators: Mutex<Vec<PushedGenerator>>,
    outcome: Mutex<GeneratorOutcome>,
    acknowledged: AtomicU64,
    failed: Mutex<Option<String>>,
}

impl PushReceiver {
    async fn start(acknowledge: bool, deliveries: Arc<Deliveries>) -> anyhow::Result<PushReceiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("listening for pushes on loopback")?;
        let base = format!("http://{}/push", listener.local_addr()?);
        let shared = Arc::new(PushShared {
            acknowledge,
            deliveries,
            generators: Mutex::new(Vec::new()),
            outcome: Mutex::new(GeneratorOutcome::default()),
            acknowledged: AtomicU64::new(0),
            failed: Mutex::new(None),
        });
        let app = axum::Router::new()
            .route("/push/{index}", axum::routing::post(receive_push))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(PushReceiver { base, shared })
    }

    fn take_generators(&self, operator: &GeneratorClient, names: &[String], keys: &[String]) {
        *self
            .shared
            .generators
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = names
            .iter()
            .zip(keys)
            .map(|(name, key)| {
                (
                    name.clone(),
                    Arc::new(operator.with_key(key)),
                    isms_generator::push::push_signing_key(key),
                )
            })
            .collect();
    }

    /// Waits until `changes` were delivered (and acknowledged, when asked), or a push went wrong.
    async fn outcome_when_done(&self, changes: u64) -> GeneratorOutcome {
        loop {
            let delivered = self.shared.deliveries.delivered.load(Ordering::Relaxed);
            let acknowledged = self.shared.acknowledged.load(Ordering::Relaxed);
            let failed = self
                .shared
                .failed
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone();
            if let Some(failed) = failed {
                eprintln!("generators: a push went wrong: {failed}");
            }
            if delivered >= changes && (!self.shared.acknowledge || acknowledged >= changes) {
                let mut outcome = std::mem::take(
                    &mut *self
                        .shared
                        .outcome
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()),
                );
                outcome.acknowledgements = acknowledged;
                return outcome;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// One push: checked, timed, acknowledged (after the answer, as `isms generator listen` does).
async fn receive_push(
    axum::extract::State(shared): axum::extract::State<Arc<PushShared>>,
    axum::extract::Path(index): axum::extract::Path<usize>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let arrived = Instant::now();
    let generator = shared
        .generators
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(index)
        .cloned();
    let refuse = |reason: String| {
        *shared
            .failed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(reason);
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    };
    let Some((name, client, signing_key)) = generator else {
        // Pushed before the run knew its key (a registration still going on): tried again.
        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
    };
    let signature = headers
        .get(isms_generator::push::SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok());
    let now = jiff::Timestamp::now().as_second();
    if let Err(error) = isms_generator::push::verify(&signing_key, signature, &body, now) {
        return refuse(format!("push to {name}: {error}"));
    }
    let pushed: isms_generator::push::PushedChanges = match serde_json::from_slice(&body) {
        Ok(pushed) => pushed,
        Err(error) => return refuse(format!("push to {name}: {error}")),
    };
    {
        let mut outcome = shared
            .outcome
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut sent_at = shared
            .deliveries
            .sent_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        outcome.pulls += 1;
        for change in &pushed.changes {
            match sent_at.remove(&(index, change.id.clone())) {
                Some(sent) => {
                    outcome
                        .latencies
                        .push(arrived.saturating_duration_since(sent));
                    shared.deliveries.delivered.fetch_add(1, Ordering::Relaxed);
                }
                // Pushed again before its acknowledgement landed.
                None => outcome.unexpected += 1,
            }
        }
    }
    if shared.acknowledge {
        let shared = shared.clone();
        tokio::spawn(async move {
            for change in pushed.changes {
                match within(
                    REQUEST_TIMEOUT,
                    client.acknowledge(&name, &change.id, change.version, None),
                )
                .await
                {
                    Ok(_) => {
                        shared.acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        *shared
                            .failed
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(format!(
                            "acknowledging {} version {} of {name}: {error:#}",
                            change.id, change.version
                        ))
                    }
                }
            }
        });
    }
    axum::http::StatusCode::ACCEPTED
}

/// Makes `changes` instantiations, change k on generator k mod N with the id `c<k>`, `concurrency`
/// in flight; each one's send time is recorded before its request goes out. Returns each
/// request's round trip (sent to answer read).
async fn instantiate_all(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    names: &[String],
    changes: u64,
    concurrency: usize,
    deliveries: &Deliveries,
) -> anyhow::Result<Vec<Duration>> {
    let base = url.trim_end_matches('/');
    let next = AtomicU64::new(0);
    let worker = || async {
        let mut round_trips = Vec::new();
        loop {
            let change = next.fetch_add(1, Ordering::Relaxed);
            if change >= changes {
                return Ok::<_, anyhow::Error>(round_trips);
            }
            let index = (change % names.len() as u64) as usize;
            let name = &names[index];
            let id = format!("c{change}");
            let body = json!({
                "class": CLASS_NAME,
                "id": id,
                "arguments": {"port": (1 + change % 65_535).to_string()},
            });
            let request = http
                .post(format!("{base}/api/generators/{name}/instances"))
                .bearer_auth(key)
                .json(&body);
            let sent = Instant::now();
            deliveries
                .sent_at
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert((index, id.clone()), sent);
            let response = request.send().await.with_context(|| {
                format!("instantiating {id} on {name} (request timeout {REQUEST_TIMEOUT:?})")
            })?;
            let status = response.status();
            let text = response
                .text()
                .await
                .with_context(|| format!("instantiating {id} on {name}"))?;
            if status != reqwest::StatusCode::CREATED {
                bail!("instantiating {id} on {name}: the collector answered {status}: {text:.300}");
            }
            let answer: Value = serde_json::from_str(&text)
                .with_context(|| format!("instantiating {id} on {name}: {text:.300}"))?;
            if answer["instance"]["version"].as_u64().is_none() {
                bail!("instantiating {id} on {name}: no instance.version in {text:.300}");
            }
            round_trips.push(sent.elapsed());
            deliveries.instantiated.fetch_add(1, Ordering::Relaxed);
        }
    };
    let per_worker = try_join_all((0..concurrency).map(|_| worker())).await?;
    let mut round_trips: Vec<Duration> = per_worker.into_iter().flatten().collect();
    round_trips.sort_unstable();
    Ok(round_trips)
}

/// Deletes the generators, `concurrency` at a time; how many and how long it took.
async fn delete_generators(
    operator: &GeneratorClient,
    names: Vec<String>,
    concurrency: usize,
) -> anyhow::Result<(usize, Duration)> {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let worker = || async {
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(name) = names.get(index) else {
                return Ok::<_, anyhow::Error>(());
            };
            within(REQUEST_TIMEOUT, operator.delete(name))
                .await
                .with_context(|| format!("deleting generator {name}"))?;
        }
    };
    try_join_all((0..concurrency.min(names.len())).map(|_| worker())).await?;
    Ok((names.len(), started.elapsed()))
}

/// Every 10 s until aborted, how far the run is (on stderr): slow phases show they move.
async fn report_progress(
    registered: Arc<Mutex<Vec<String>>>,
    deliveries: Arc<Deliveries>,
    generator_count: usize,
    changes: u64,
) {
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let registered_count = registered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len();
        eprintln!(
            "generators: after {:.0} s: {registered_count} of {generator_count} registered, {} of {changes} instantiated, {} delivered",
            started.elapsed().as_secs_f64(),
            deliveries.instantiated.load(Ordering::Relaxed),
            deliveries.delivered.load(Ordering::Relaxed)
        );
    }
}

/// A spawned task stopped when this is dropped (on every way out of the function holding it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A client call under a timeout, its error made an anyhow error.
async fn within<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, isms_generator::ClientError>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(anyhow::Error::new(error)),
        Err(_) => bail!("no answer within {limit:?}"),
    }
}

/// The element at `fraction` of sorted `values` (nearest rank); zero when there are none.
fn percentile(values: &[Duration], fraction: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let rank = (fraction * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

fn format_kib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The collector's process, read through /proc.
struct ServerProcess {
    pid: u32,
}

impl ServerProcess {
    fn new(pid: u32) -> anyhow::Result<ServerProcess> {
        let server = ServerProcess { pid };
        server.rss_kib()?;
        Ok(server)
    }

    /// Its resident set size (VmRSS), KiB.
    fn rss_kib(&self) -> anyhow::Result<u64> {
        self.status_kib("VmRSS")
    }

    /// A size field of /proc/PID/status (`VmRSS:     1234 kB`), KiB.
    fn status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|number| number.trim().parse().ok())
            .with_context(|| format!("no {field} in {path}"))
    }

    /// Its CPU time so far (user and system), in clock ticks.
    fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/stat", self.pid);
        let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        // The command name (in parentheses) may hold spaces; the fields after it are plain.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // After the name: state is field 3 of stat(5), utime 14 and stime 15.
        let ticks = |position: usize| -> Option<u64> { fields.get(position - 3)?.parse().ok() };
        ticks(14)
            .zip(ticks(15))
            .map(|(user, system)| user + system)
            .with_context(|| format!("cannot read the CPU times in {path}"))
    }

    /// How many sockets it holds open.
    fn sockets(&self) -> anyhow::Result<usize> {
        let path = format!("/proc/{}/fd", self.pid);
        let entries = std::fs::read_dir(&path).with_context(|| format!("reading {path}"))?;
        Ok(entries
            .filter_map(Result::ok)
            .filter_map(|entry| std::fs::read_link(entry.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count())
    }

    /// Waits until it holds at least `count` sockets; how many it holds then.
    async fn wait_sockets(&self, count: usize, limit: Duration) -> anyhow::Result<usize> {
        let started = Instant::now();
        loop {
            let sockets = self.sockets()?;
            if sockets >= count {
                return Ok(sockets);
            }
            if started.elapsed() > limit {
                bail!(
                    "the collector holds {sockets} sockets after {limit:?}; expected at least {count} (one per waiting pull)"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its RSS once it has stopped moving: after a busy phase the collector's allocator gives
    /// memory back over many seconds (a burst of pulls each reading every record can leave
    /// hundreds of MiB behind for a while), so this reads it every half second until it has
    /// stayed within 1% for 10 s, or `at_most` has passed.
    async fn settled_rss_kib(&self, at_most: Duration) -> anyhow::Result<u64> {
        const STEADY_FOR: Duration = Duration::from_secs(10);
        let started = Instant::now();
        let mut reference = self.rss_kib()?;
        let mut steady_since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.rss_kib()?;
            if now.abs_diff(reference) * 100 > reference {
                reference = now;
                steady_since = Instant::now();
            }
            if steady_since.elapsed() >= STEADY_FOR || started.elapsed() >= at_most {
                return Ok(now);
            }
        }
    }

    /// Its peak RSS so far (VmHWM), KiB.
    fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        self.status_kib("VmHWM")
    }

    /// Waits until it has used no more than a tick of CPU time over 300 ms (every pull waiting,
    /// nothing left to do).
    async fn wait_idle(&self, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut previous = self.cpu_ticks()?;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = self.cpu_ticks()?;
            if now.saturating_sub(previous) <= 1 {
                return Ok(());
            }
            if started.elapsed() > limit {
                bail!("the collector was still busy after {limit:?}");
            }
            previous = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_the_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&values, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&values[..1], 0.9), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
