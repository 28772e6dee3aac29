//! `isms serve`: the collector process, one HTTP server over one store.
//!
//! The server is deliberately thin: sources decode bytes into events (`ingest`), `isms-event` normalizes
//! them, the [`Store`] commits them, and the search endpoints compile queries into the shared predicate
//! IR. State is one [`AppState`] shared by every handler, so later stages (detection, alerts, the console)
//! plug in as more routes and more tasks over the same store, not as a rewrite.
#![deny(missing_docs)]

pub mod amqp;
pub mod auth;
pub mod detect;
pub mod error;
pub mod files;
pub mod generators;
pub mod ingest;
pub mod log_budget;
pub mod push;
pub mod routes;
pub mod syslog;
pub mod time_bounds;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use isms_config::{Config, SyncMode};
use isms_store::sqlite::{Durability, SqliteOptions, SqliteStore};
use isms_store::{RetentionPolicy, Store};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::KeyVerifier;
use crate::ingest::body::BodyLimits;

/// Bounds on what one ingestion request may carry.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// Largest request body, in bytes, as received (compressed or not).
    pub max_body_bytes: u64,
    /// Bounds applied while decoding.
    pub body: BodyLimits,
}

impl IngestLimits {
    /// The limits a configuration asks for.
    pub fn from_config(config: &Config) -> IngestLimits {
        IngestLimits {
            max_body_bytes: config.http.max_body_bytes,
            body: BodyLimits::from(&config.http),
        }
    }
}

/// What every handler shares.
pub struct AppState {
    /// The event store.
    pub store: Arc<dyn Store>,
    /// Key verification with its cache.
    pub keys: KeyVerifier,
    /// Ingestion bounds.
    pub limits: IngestLimits,
    /// Renders `/metrics`, when this process installed the recorder.
    pub metrics: Option<PrometheusHandle>,
    /// When the server started.
    pub started: Instant,
    /// The detection engine, unless `detect.enabled` is off.
    pub detect: Option<Arc<detect::DetectService>>,
    /// The registry of alert generators, their keys' bindings and the activity log.
    pub generators: Arc<generators::GeneratorService>,
}

/// The process-wide Prometheus recorder (installed once, even when tests start several servers).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = histogram_buckets(metrics_exporter_prometheus::PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|_| handle)
        })
        .clone()
}

/// Histograms with fixed buckets rather than summaries: Prometheus can add buckets across servers and
/// compute any quantile, and rendering them is cheap (summaries merged their sketches at every scrape,
/// a million instructions each, a twentieth of a syslog load's CPU when scraped ten times a second).
fn histogram_buckets(
    builder: metrics_exporter_prometheus::PrometheusBuilder,
) -> metrics_exporter_prometheus::PrometheusBuilder {
    use metrics_exporter_prometheus::Matcher;
    const SECONDS: &[f64] = &[
        0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    const EVENTS: &[f64] = &[
        1.0, 4.0, 16.0, 64.0, 256.0, 1_024.0, 4_096.0, 16_384.0, 65_536.0,
    ];
    builder
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
        .and_then(|builder| {
            builder.set_buckets_for_metric(Matcher::Full("isms_store_commit_events".into()), EVENTS)
        })
        // It fails only for an empty list of buckets.
        .expect("the bucket lists are constants, not empty")
}

/// Opens the embedded store in the configured data directory.
pub async fn open_store(config: &Config) -> Result<SqliteStore, isms_store::StoreError> {
    let mut options = SqliteOptions::new(config.data_dir.join("isms.db"));
    options.durability = match config.store.sync {
        SyncMode::Full => Durability::Full,
        SyncMode::Normal => Durability::Normal,
    };
    options.writer_max_batch_events = config.store.writer_max_batch_events as usize;
    SqliteStore::open(options).await
}

/// What `isms serve` did with keys at start-up, for the caller to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapKey {
    /// Keys already existed; nothing was created.
    Existing {
        /// Live keys.
        live: usize,
    },
    /// A first key was created; its text is shown once.
    Created {
        /// The key's name.
        name: String,
        /// The key text.
        text: String,
        /// True when the text came from `ISMS_BOOTSTRAP_KEY`.
        from_environment: bool,
    },
}

/// Creates the first key of a new data directory (from `bootstrap_text` if given).
pub async fn bootstrap_key(
    store: &dyn Store,
    bootstrap_text: Option<String>,
) -> Result<BootstrapKey, auth::KeyError> {
    let keys = store.list_keys().await?;
    if !keys.is_empty() {
        return Ok(BootstrapKey::Existing {
            live: keys
                .iter()
                .filter(|key| key.revoked_micros.is_none())
                .count(),
        });
    }
    let from_environment = bootstrap_text.is_some();
    let (record, text) = auth::create_key(store, "admin", bootstrap_text).await?;
    tracing::info!(
        key_id = record.id,
        name = record.name,
        "created the first key"
    );
    Ok(BootstrapKey::Created {
        name: record.name,
        text,
        from_environment,
    })
}

/// A running server.
pub struct RunningServer {
    /// The address it listens on (useful when the configuration said port 0).
    pub local_address: SocketAddr,
    /// Resolves when the server has stopped.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Where the syslog receivers listen.
    pub syslog: syslog::SyslogListeners,
    /// The queue and broker the AMQP consumer reads, when `amqp.url` is set.
    pub amqp: Option<amqp::AmqpConsumerInfo>,
}

/// Binds the listeners (HTTP, and the syslog receivers the configuration asks for) and starts serving;
/// also starts the AMQP consumer (which connects in the background) and the retention task.
pub async fn start(
    config: &Config,
    store: Arc<dyn Store>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<RunningServer> {
    // Before detection starts: the engine takes its per-rule counters from the recorder.
    let metrics = metrics_handle();
    let detect = detect::start_detection(config, store.clone())
        .await
        .map_err(|error| std::io::Error::other(error.to_string()))?;
    let state = Arc::new(AppState {
        keys: KeyVerifier::new(store.clone()),
        store: store.clone(),
        limits: IngestLimits::from_config(config),
        metrics,
        started: Instant::now(),
        detect: detect.clone(),
        generators: Arc::new(generators::GeneratorService::new(
            store.clone(),
            Duration::from_secs(config.http.request_timeout_seconds.max(1)),
            &config.generators,
        )),
    });
    // Changes made while the collector was down are pushed now.
    state.generators.refresh_pushes().await;
    let app = routes::router(state)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(config.http.request_timeout_seconds.max(1)),
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(routes::json_errors));
    let listener = tokio::net::TcpListener::bind(&config.http.listen).await?;
    let local_address = listener.local_addr()?;
    let decoders = Arc::new(
        build_decoders(&config.decoders.file)
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?,
    );
    let syslog = syslog::start_syslog(&config.syslog, store.clone(), decoders.clone())
        .await
        .map_err(|error| {
            let kind = match &error {
                syslog::SyslogStartError::Bind { source, .. } => source.kind(),
                _ => std::io::ErrorKind::InvalidInput,
            };
            std::io::Error::new(kind, error.to_string())
        })?;
    start_files(config, store.clone(), decoders)?;
    let amqp = amqp::start_amqp(&config.amqp, &config.http, store.clone())
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
    spawn_retention(config, store);
    let task = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        if let Some(detect) = detect {
            // Where detection stands, so that a restart goes on from here.
            detect.stop(Duration::from_secs(30)).await;
            tracing::info!("detection stopped");
        }
        served
    });
    Ok(RunningServer {
        local_address,
        task,
        syslog,
        amqp,
    })
}

/// The built-in decoders and the operator's own from `decoders_file` (`decoders.file`; empty for
/// none), or what is wrong with the latter.
pub fn build_decoders(decoders_file: &str) -> Result<isms_decode::Decoders, String> {
    if decoders_file.is_empty() {
        return Ok(isms_decode::Decoders::builtin());
    }
    let definitions = isms_config::load_decoder_file(std::path::Path::new(decoders_file))
        .map_err(|error| error.to_string())?;
    let specs = definitions
        .into_iter()
        .map(|definition| isms_decode::UserDecoderSpec {
            name: definition.name,
            program: definition.program,
            pattern: definition.pattern,
            category: definition.category,
            fields: definition.fields.into_iter().collect(),
        })
        .collect();
    isms_decode::Decoders::with_user(specs).map_err(|error| format!("{decoders_file}: {error}"))
}

/// Starts tailing `files.paths`, when it names any.
fn start_files(
    config: &Config,
    store: Arc<dyn Store>,
    decoders: Arc<isms_decode::Decoders>,
) -> std::io::Result<()> {
    if config.files.paths.trim().is_empty() {
        return Ok(());
    }
    let time_zone = isms_config::parse_time_zone(&config.syslog.time_zone)
        .map_err(|reason| std::io::Error::new(std::io::ErrorKind::InvalidInput, reason))?;
    let factory: files::ConverterFactory = Arc::new(move || {
        Box::new(files::DecodingConverter::new(
            decoders.clone(),
            time_zone.clone(),
        ))
    });
    let tailer =
        files::Tailer::new(&config.files, &config.data_dir, store, factory).map_err(|error| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, error.to_string())
        })?;
    tailer.spawn(
        Duration::from_millis(config.files.poll_interval_milliseconds),
        tokio::runtime::Handle::current(),
    )
}

fn spawn_retention(config: &Config, store: Arc<dyn Store>) {
    let policy = RetentionPolicy {
        max_age_micros: (config.store.retention_days > 0)
            .then(|| i64::from(config.store.retention_days) * 86_400_000_000),
        max_bytes: (config.store.retention_max_bytes > 0)
            .then_some(config.store.retention_max_bytes),
    };
    if policy.max_age_micros.is_none() && policy.max_bytes.is_none() {
        return;
    }
    let interval = Duration::from_secs(config.store.retention_interval_seconds.max(1));
    tokio::spawn(async move {
        loop {
            if let Err(error) = store.apply_retention(policy).await {
                tracing::warn!(%error, "retention pass failed; will try again");
            }
            tokio::time::sleep(interval).await;
        }
    });
}
