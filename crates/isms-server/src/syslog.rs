//! The syslog receivers: UDP datagrams, TCP streams and TLS streams (RFC 5425) into the store,
//! through `isms_syslog`.
//!
//! Each receiver gathers what arrived together into one batch, parses and normalizes every message
//! with its sender as the origin, and appends the batch: one commit for many messages. A UDP batch is
//! the datagrams already waiting (at most [`BATCH_MESSAGES`]). Syslog has no acknowledgment, so a TCP
//! or TLS reader stores one batch at a time while it reads and parses the next, which holds whatever
//! arrived meanwhile (at most [`STREAM_BATCH_MESSAGES`], less when many connections share the
//! budget); a full batch waits, and so does the sender (nothing queues up in memory). A message over
//! `syslog.max_message_bytes` is dropped, counted (`isms_syslog_dropped_total`) and logged, and the
//! stream goes on; a TCP stream whose octet count is
//! not a number is closed, since nothing after it can be framed. Connections are bounded, in all and
//! per sender address (so one host cannot take every slot); TLS
//! handshakes must finish within [`TLS_HANDSHAKE_TIMEOUT`], and failed ones are counted
//! (`isms_syslog_tls_handshake_failures_total`). Problems a sender can repeat at will are logged at a
//! bounded rate ([`LogBudget`]).
//!
//! Each message goes through the decoders (`isms_decode`) before it is normalized, so an sshd
//! failure arrives as `category:authentication` with `details.username` and `details.result`.
//!
//! RFC 3164 times carry no zone: each message is read in the zone of its source
//! (`syslog.source_time_zones`, by the sender's address, or by the host name the message gives, which
//! is what a relay forwards), else in `syslog.time_zone`.
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use isms_config::SyslogConfig;
use isms_event::{Delivery, Origin};
use isms_store::{EventPreparer, PreparedEvent, Store};
use isms_syslog::{FrameDecoder, FrameError, ParseContext, SyslogFormat};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket};

use crate::log_budget::LogBudget;

/// Most datagrams stored in one append.
pub const BATCH_MESSAGES: usize = 16_384;

/// Batches of UDP messages being stored at once. The receiver goes on reading while they commit, so
/// the socket's buffer only has to hold what arrives while one batch is prepared, not while it is
/// made durable.
const UDP_STORES_IN_FLIGHT: usize = 4;

/// The UDP socket's receive buffer asked for (the kernel grants at most `net.core.rmem_max`): room
/// for about 20,000 messages of 200 bytes while the receiver is busy.
const UDP_RECEIVE_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// The longest UDP payload there is.
const MAX_UDP_PAYLOAD_BYTES: usize = 65_535;

/// Most TCP (or TLS) connections served at once, per receiver; more are closed at once with a warning.
const MAX_TCP_CONNECTIONS: usize = 1024;

/// Most TCP (or TLS) connections from one address at once, so that one host cannot take every slot.
const MAX_TCP_CONNECTIONS_PER_SENDER: usize = 64;

/// Time a TLS client has to finish its handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Bounded logging of what senders can repeat at will: oversized messages, broken framing, failed
/// handshakes, refused connections.
static SENDER_PROBLEMS: LogBudget = LogBudget::new(10, Duration::from_secs(60));

/// Where the receivers listen (the real ports when the configuration said port 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct SyslogListeners {
    /// The UDP receiver's address, if it runs.
    pub udp: Option<SocketAddr>,
    /// The TCP receiver's address, if it runs.
    pub tcp: Option<SocketAddr>,
    /// The TLS receiver's address, if it runs.
    pub tls: Option<SocketAddr>,
}

/// Why the syslog receivers could not start.
#[derive(Debug, thiserror::Error)]
pub enum SyslogStartError {
    /// A listener could not bind its address.
    #[error("syslog {transport} receiver on {address}: {source}")]
    Bind {
        /// `udp`, `tcp` or `tls`.
        transport: &'static str,
        /// The address as configured.
        address: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A TLS file could not be read or used.
    #[error("syslog tls receiver: {key} {path}: {reason}")]
    Tls {
        /// The configuration key naming the file.
        key: &'static str,
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration did not validate (time zones).
    #[error("syslog: {0}")]
    Config(String),
}

/// What every receiver task shares.
struct Receiver {
    store: Arc<dyn Store>,
    decoders: Arc<isms_decode::Decoders>,
    max_message_bytes: usize,
    time_zones: SourceTimeZones,
    /// `syslog:udp:5514`, `syslog:tcp:5514` or `syslog:tls:6514`.
    endpoint: String,
}

/// The zone of RFC 3164 times per source.
#[derive(Debug, Clone)]
struct SourceTimeZones {
    default: TimeZone,
    /// Lowercased sender addresses or host names, and their zones.
    by_source: Vec<(String, TimeZone)>,
}

impl SourceTimeZones {
    fn of(&self, source: &str) -> Option<&TimeZone> {
        self.by_source
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(source))
            .map(|(_, zone)| zone)
    }
}

/// Binds the configured receivers and starts them. An empty address leaves a receiver off.
pub async fn start_syslog(
    config: &SyslogConfig,
    store: Arc<dyn Store>,
    decoders: Arc<isms_decode::Decoders>,
) -> Result<SyslogListeners, SyslogStartError> {
    let time_zones = SourceTimeZones {
        default: isms_config::parse_time_zone(&config.time_zone)
            .map_err(|reason| SyslogStartError::Config(format!("time_zone: {reason}")))?,
        by_source: isms_config::parse_source_time_zones(&config.source_time_zones)
            .map_err(|reason| SyslogStartError::Config(format!("source_time_zones: {reason}")))?,
    };
    let max_message_bytes = config.max_message_bytes as usize;
    let receiver = |transport: &str, address: SocketAddr| {
        Arc::new(Receiver {
            store: store.clone(),
            decoders: decoders.clone(),
            max_message_bytes,
            time_zones: time_zones.clone(),
            endpoint: format!("syslog:{transport}:{}", address.port()),
        })
    };
    let bind_error = |transport: &'static str, address: &str| {
        let address = address.to_owned();
        move |source| SyslogStartError::Bind {
            transport,
            address,
            source,
        }
    };
    let mut listeners = SyslogListeners::default();
    if !config.udp_listen.is_empty() {
        let socket = UdpSocket::bind(&config.udp_listen)
            .await
            .map_err(bind_error("udp", &config.udp_listen))?;
        let address = socket
            .local_addr()
            .map_err(bind_error("udp", &config.udp_listen))?;
        let buffer = socket2::SockRef::from(&socket);
        if let Err(error) = buffer.set_recv_buffer_size(UDP_RECEIVE_BUFFER_BYTES) {
            tracing::warn!(%error, "syslog udp receive buffer not enlarged");
        }
        // Linux reports twice what it grants (the other half is its bookkeeping).
        let granted = buffer.recv_buffer_size().unwrap_or(0) / 2;
        if granted < UDP_RECEIVE_BUFFER_BYTES {
            tracing::info!(
                granted_bytes = granted,
                asked_bytes = UDP_RECEIVE_BUFFER_BYTES,
                "syslog udp receive buffer smaller than asked (raise net.core.rmem_max)"
            );
        }
        listeners.udp = Some(address);
        let socket = socket
            .into_std()
            .and_then(|socket| socket.set_nonblocking(false).map(|()| socket))
            .map_err(bind_error("udp", &config.udp_listen))?;
        let receiver = receiver("udp", address);
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("isms-syslog-udp".into())
            .spawn(move || udp_receiver_thread(socket, receiver, runtime))
            .map_err(bind_error("udp", &config.udp_listen))?;
    }
    if !config.tcp_listen.is_empty() {
        let listener = TcpListener::bind(&config.tcp_listen)
            .await
            .map_err(bind_error("tcp", &config.tcp_listen))?;
        let address = listener
            .local_addr()
            .map_err(bind_error("tcp", &config.tcp_listen))?;
        listeners.tcp = Some(address);
        tokio::spawn(tcp_loop(listener, receiver("tcp", address), None));
    }
    if !config.tls_listen.is_empty() {
        let acceptor = tls_acceptor(config)?;
        let listener = TcpListener::bind(&config.tls_listen)
            .await
            .map_err(bind_error("tls", &config.tls_listen))?;
        let address = listener
            .local_addr()
            .map_err(bind_error("tls", &config.tls_listen))?;
        listeners.tls = Some(address);
        tokio::spawn(tcp_loop(listener, receiver("tls", address), Some(acceptor)));
    }
    Ok(listeners)
}

/// The TLS server configuration from the PEM files the configuration names: the certificate chain,
/// the key, and the client authorities when clients must show a certificate.
fn tls_acceptor(config: &SyslogConfig) -> Result<tokio_rustls::TlsAcceptor, SyslogStartError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    fn tls_error(key: &'static str, path: &str, reason: impl ToString) -> SyslogStartError {
        SyslogStartError::Tls {
            key,
            path: path.to_owned(),
            reason: reason.to_string(),
        }
    }
    fn certificates(
        key: &'static str,
        path: &str,
    ) -> Result<Vec<CertificateDer<'static>>, SyslogStartError> {
        let certificates = CertificateDer::pem_file_iter(Path::new(path))
            .map_err(|error| tls_error(key, path, error))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| tls_error(key, path, error))?;
        if certificates.is_empty() {
            return Err(tls_error(key, path, "holds no PEM certificate"));
        }
        Ok(certificates)
    }

    let chain = certificates("syslog.tls_certificate", &config.tls_certificate)?;
    let private_key = PrivateKeyDer::from_pem_file(Path::new(&config.tls_key))
        .map_err(|error| tls_error("syslog.tls_key", &config.tls_key, error))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| tls_error("syslog.tls_listen", &config.tls_listen, error))?;
    let builder = if config.tls_client_ca.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for certificate in certificates("syslog.tls_client_ca", &config.tls_client_ca)? {
            roots
                .add(certificate)
                .map_err(|error| tls_error("syslog.tls_client_ca", &config.tls_client_ca, error))?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| tls_error("syslog.tls_client_ca", &config.tls_client_ca, error))?;
        builder.with_client_cert_verifier(verifier)
    };
    let server_config = builder
        .with_single_cert(chain, private_key)
        .map_err(|error| tls_error("syslog.tls_key", &config.tls_key, error))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server_config)))
}

/// What the messages of one sender read at one moment share, prepared once for all of them: the parse
/// context, the sender as `origin` and the receipt time's text.
struct Arrival {
    peer: SocketAddr,
    /// The sender's address, the host of a message that names none.
    peer_host: String,
    context: ParseContext,
    delivery: Delivery,
}

impl Receiver {
    fn arrival(&self, peer: SocketAddr, received: Timestamp) -> Arrival {
        // A dual-stack socket shows an IPv4 sender as ::ffff:a.b.c.d; it is a.b.c.d.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let peer_host = peer.ip().to_string();
        let time_zone = self
            .time_zones
            .of(&peer_host)
            .unwrap_or(&self.time_zones.default)
            .clone();
        let origin = Origin {
            peer: Some(peer.to_string()),
            endpoint: self.endpoint.clone(),
            key_name: None,
        };
        Arrival {
            peer,
            peer_host,
            context: ParseContext {
                received,
                time_zone,
            },
            delivery: Delivery::new(&origin, received),
        }
    }

    /// Parses and normalizes one message into `events`; counts what cannot be stored.
    fn accept(
        &self,
        bytes: &[u8],
        arrival: &Arrival,
        preparer: &mut EventPreparer,
        events: &mut Vec<PreparedEvent>,
    ) {
        let mut message = isms_syslog::parse(bytes, &arrival.context);
        if message.format == SyslogFormat::Rfc3164
            && !self.time_zones.by_source.is_empty()
            && let Some(zone) = message
                .hostname
                .as_deref()
                .and_then(|host| self.time_zones.of(host))
            && *zone != arrival.context.time_zone
        {
            // A relay forwards many hosts: the host the message names has its own zone.
            let context = ParseContext {
                received: arrival.context.received,
                time_zone: zone.clone(),
            };
            message = isms_syslog::parse(bytes, &context);
        }
        let fields = message.into_fields(Some(&arrival.peer_host));
        match self.decoders.event_of(fields, &arrival.delivery) {
            // Prepared for the store at once, and its document freed by the thread that built it.
            Ok(event) => events.push(preparer.prepare(&event)),
            Err(error) => {
                // Only an empty message has neither summary nor details; nothing to keep.
                metrics::counter!("isms_syslog_dropped_total", "reason" => "invalid").increment(1);
                tracing::debug!(peer = %arrival.peer, %error, "syslog message not stored");
            }
        }
    }

    fn too_long(&self, peer: SocketAddr, error: &FrameError) {
        metrics::counter!("isms_syslog_dropped_total", "reason" => "too_long").increment(1);
        if let Some(held_back) = SENDER_PROBLEMS.allow() {
            tracing::warn!(%peer, endpoint = %self.endpoint, %error, held_back, "syslog message dropped");
        }
    }

    async fn store(&self, events: Vec<PreparedEvent>) {
        if events.is_empty() {
            return;
        }
        let count = events.len() as u64;
        match self.store.append_prepared(events).await {
            Ok(()) => {
                metrics::counter!("isms_syslog_messages_total", "endpoint" => self.endpoint.clone())
                    .increment(count);
            }
            Err(error) => {
                metrics::counter!("isms_syslog_dropped_total", "reason" => "store")
                    .increment(count);
                tracing::error!(%error, messages = count, endpoint = %self.endpoint, "syslog messages not stored");
            }
        }
    }
}

/// Most bytes of datagrams gathered into one batch (with [`BATCH_MESSAGES`], this bounds the memory
/// of the batches in flight and of the one waiting for them).
const UDP_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Datagrams received together, kept as bytes until a batch task parses them.
#[derive(Default)]
struct DatagramBatch {
    bytes: Vec<u8>,
    datagrams: Vec<(std::ops::Range<usize>, SocketAddr)>,
}

impl DatagramBatch {
    fn is_full(&self) -> bool {
        self.datagrams.len() >= BATCH_MESSAGES || self.bytes.len() >= UDP_BATCH_BYTES
    }
}

/// Receives datagrams into batches and hands each to a batch task that parses and stores it (at most
/// [`UDP_STORES_IN_FLIGHT`] at once), so parsing runs on every core while the receiver only copies
/// bytes. The receiver is a thread of its own, not a task: batch tasks hold the runtime's threads for
/// as long as a batch takes to parse, and a receiver waiting behind them let the kernel drop a tenth of
/// a 100,000 datagrams per second load. While every batch task is busy the receiver keeps reading into
/// the next batch, up to [`BATCH_MESSAGES`] or [`UDP_BATCH_BYTES`] (the socket's buffer alone fills
/// within a few hundredths of a second at that rate); a full batch waits for a task.
fn udp_receiver_thread(
    socket: std::net::UdpSocket,
    receiver: Arc<Receiver>,
    runtime: tokio::runtime::Handle,
) {
    // One byte more than allowed, so a longer datagram shows itself (the rest of it is cut off); no
    // datagram is longer than UDP's own limit.
    let mut buffer = vec![0u8; receiver.max_message_bytes.min(MAX_UDP_PAYLOAD_BYTES) + 1];
    let stores_in_flight = Arc::new(tokio::sync::Semaphore::new(UDP_STORES_IN_FLIGHT));
    let mut batch = DatagramBatch::default();
    // Datagrams gathered since the batch last went to a task (dropped ones included), and whether the
    // last receive found none waiting.
    let mut taken = 0;
    let mut drained = false;
    // The socket waits without end while nothing is gathered, briefly while a batch waits.
    let mut timeout_set = false;
    loop {
        if !batch.datagrams.is_empty() {
            let permit = if batch.is_full() {
                runtime
                    .block_on(stores_in_flight.clone().acquire_owned())
                    .ok()
            } else if drained || taken >= UDP_ROUND_DATAGRAMS {
                stores_in_flight.clone().try_acquire_owned().ok()
            } else {
                None
            };
            if let Some(permit) = permit {
                store_datagrams(&runtime, &receiver, std::mem::take(&mut batch), permit);
                taken = 0;
            }
        }
        let brief = !batch.datagrams.is_empty();
        if brief != timeout_set {
            if let Err(error) = socket.set_read_timeout(brief.then_some(UDP_BATCH_WAIT)) {
                tracing::warn!(%error, "syslog udp receive timeout not set");
            }
            timeout_set = brief;
        }
        let (length, peer) = match socket.recv_from(&mut buffer) {
            Ok(datagram) => datagram,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                drained = true;
                continue;
            }
            Err(error) => {
                if let Some(held_back) = SENDER_PROBLEMS.allow() {
                    tracing::warn!(%error, held_back, "syslog udp receive failed");
                }
                continue;
            }
        };
        drained = false;
        taken += 1;
        if length > receiver.max_message_bytes {
            let limit = receiver.max_message_bytes;
            receiver.too_long(peer, &FrameError::TooLong { length, limit });
        } else {
            let start = batch.bytes.len();
            batch.bytes.extend_from_slice(&buffer[..length]);
            let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
            batch.datagrams.push((start..batch.bytes.len(), peer));
        }
    }
}

/// How long the UDP receiver waits for another datagram before a gathered batch goes to a task.
const UDP_BATCH_WAIT: Duration = Duration::from_millis(1);

/// Datagrams the UDP receiver takes in one round before it looks at its batch tasks again.
const UDP_ROUND_DATAGRAMS: usize = 512;

/// Parses, prepares and stores one batch of datagrams in a task of its own, holding `permit`.
fn store_datagrams(
    runtime: &tokio::runtime::Handle,
    receiver: &Arc<Receiver>,
    batch: DatagramBatch,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let storing = receiver.clone();
    runtime.spawn(async move {
        let received = Timestamp::now();
        let mut events = Vec::with_capacity(batch.datagrams.len());
        let mut preparer = EventPreparer::default();
        let mut arrival: Option<Arrival> = None;
        for (range, peer) in batch.datagrams {
            let current = match arrival.take() {
                Some(same) if same.peer == peer => same,
                _ => storing.arrival(peer, received),
            };
            storing.accept(&batch.bytes[range], &current, &mut preparer, &mut events);
            arrival = Some(current);
        }
        storing.store(events).await;
        drop(permit);
    });
}

async fn tcp_loop(
    listener: TcpListener,
    receiver: Arc<Receiver>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS));
    let per_sender: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>> =
        Arc::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(connection) => connection,
            Err(error) => {
                tracing::warn!(%error, "syslog tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let sender = peer.ip().to_canonical();
        let sender_slot = {
            let mut open = per_sender
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let count = open.entry(sender).or_insert(0);
            if *count >= MAX_TCP_CONNECTIONS_PER_SENDER {
                false
            } else {
                *count += 1;
                true
            }
        };
        if !sender_slot {
            metrics::counter!("isms_syslog_connections_refused_total", "endpoint" => receiver.endpoint.clone())
                .increment(1);
            if let Some(held_back) = SENDER_PROBLEMS.allow() {
                tracing::warn!(%peer, limit = MAX_TCP_CONNECTIONS_PER_SENDER, held_back, endpoint = %receiver.endpoint, "syslog connection refused: too many open from this sender");
            }
            continue;
        }
        let release_sender = {
            let per_sender = per_sender.clone();
            move || {
                let mut open = per_sender
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some(count) = open.get_mut(&sender) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        open.remove(&sender);
                    }
                }
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            release_sender();
            metrics::counter!("isms_syslog_connections_refused_total", "endpoint" => receiver.endpoint.clone())
                .increment(1);
            if let Some(held_back) = SENDER_PROBLEMS.allow() {
                tracing::warn!(%peer, limit = MAX_TCP_CONNECTIONS, held_back, endpoint = %receiver.endpoint, "syslog connection refused: too many open");
            }
            continue;
        };
        let receiver = receiver.clone();
        let tls = tls.clone();
        let open_streams = connections.clone();
        tokio::spawn(async move {
            match tls {
                None => read_stream(stream, peer, receiver.clone(), &open_streams).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => {
                            read_stream(stream, peer, receiver.clone(), &open_streams).await
                        }
                        Ok(Err(error)) => handshake_failed(peer, &receiver, &error.to_string()),
                        Err(_) => handshake_failed(peer, &receiver, "timed out"),
                    }
                }
            }
            drop(permit);
            release_sender();
        });
    }
}

fn handshake_failed(peer: SocketAddr, receiver: &Receiver, reason: &str) {
    metrics::counter!("isms_syslog_tls_handshake_failures_total").increment(1);
    if let Some(held_back) = SENDER_PROBLEMS.allow() {
        tracing::warn!(%peer, endpoint = %receiver.endpoint, reason, held_back, "syslog tls handshake failed");
    }
}

/// Most messages a TCP or TLS stream gathers into one batch while its previous batch is being stored
/// (with few connections open; see [`stream_batch_limits`]).
pub const STREAM_BATCH_MESSAGES: usize = 16_384;

/// Most bytes of messages (as received) in one such batch.
const STREAM_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Messages and bytes all open streams may gather at once, shared out among them: what bounds the
/// memory of the TCP and TLS receivers whatever the number of connections (each also has one batch
/// being stored, no larger).
const STREAM_BUDGET_MESSAGES: usize = 65_536;
const STREAM_BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// The smallest batch limits a stream gets, however many are open.
const STREAM_BATCH_MIN_MESSAGES: usize = 64;
const STREAM_BATCH_MIN_BYTES: usize = 64 * 1024;

/// A stream's batch limits (messages, bytes) while `open` streams share the budget: a few busy
/// connections (relays) get large batches, few commits for many messages; a thousand get small ones.
fn stream_batch_limits(open: usize) -> (usize, usize) {
    let open = open.max(1);
    (
        (STREAM_BUDGET_MESSAGES / open).clamp(STREAM_BATCH_MIN_MESSAGES, STREAM_BATCH_MESSAGES),
        (STREAM_BUDGET_BYTES / open).clamp(STREAM_BATCH_MIN_BYTES, STREAM_BATCH_BYTES),
    )
}

/// Stores the batch a stream gathered in a task of its own, so the stream is read on meanwhile, and
/// starts the next batch empty.
fn store_in_background(
    receiver: &Arc<Receiver>,
    batch: &mut Vec<PreparedEvent>,
    batch_bytes: &mut usize,
) -> tokio::task::JoinHandle<()> {
    let receiver = receiver.clone();
    let events = std::mem::take(batch);
    *batch_bytes = 0;
    tokio::spawn(async move { receiver.store(events).await })
}

/// Waits for a batch stored in the background.
async fn stored(storing: tokio::task::JoinHandle<()>) {
    report_store_task(storing.await);
}

/// Logs a batch store task that did not finish: `store` counts and logs a failed append rather than
/// panicking, so this would be a bug.
fn report_store_task(outcome: Result<(), tokio::task::JoinError>) {
    if let Err(error) = outcome {
        tracing::error!(%error, "syslog batch store task failed");
    }
}

/// What a stream's reader waits for: more bytes, or the end of the batch being stored.
enum StreamStep {
    Read(std::io::Result<usize>),
    Stored(Result<(), tokio::task::JoinError>),
}

/// Reads one TCP or TLS stream to its end, storing what it frames batch by batch.
///
/// One batch is stored at a time, in a task of its own, while the reader goes on reading and parsing
/// the next; when the store is done, what gathered meanwhile is the next batch. So batches are stored
/// in the stream's order, a quiet stream's message is stored at once, and a busy one's batches grow
/// with the store's latency (one commit for more messages: fewer fsyncs, fewer index segments). A
/// batch that reaches its share of the budget ([`stream_batch_limits`]; `connection_slots` tells how
/// many streams are open) waits for the store before more is read (the sender waits; nothing queues up
/// in memory).
async fn read_stream<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    receiver: Arc<Receiver>,
    connection_slots: &tokio::sync::Semaphore,
) {
    let mut decoder = FrameDecoder::new(receiver.max_message_bytes);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut storing: Option<tokio::task::JoinHandle<()>> = None;
    let mut preparer = EventPreparer::default();
    let mut batch = Vec::new();
    let mut batch_bytes = 0usize;
    loop {
        let step = match &mut storing {
            Some(handle) => tokio::select! {
                biased;
                result = handle => StreamStep::Stored(result),
                read = stream.read(&mut buffer) => StreamStep::Read(read),
            },
            None => StreamStep::Read(stream.read(&mut buffer).await),
        };
        let read = match step {
            StreamStep::Stored(outcome) => {
                report_store_task(outcome);
                storing = None;
                store_when_idle(&mut storing, &receiver, &mut batch, &mut batch_bytes);
                continue;
            }
            StreamStep::Read(read) => read,
        };
        let ended = match read {
            Ok(0) => true,
            Ok(length) => {
                decoder.push(&buffer[..length]);
                false
            }
            Err(error) => {
                tracing::debug!(%peer, %error, "syslog tcp read failed");
                true
            }
        };
        let arrival = receiver.arrival(peer, Timestamp::now());
        let (batch_messages, batch_byte_limit) =
            stream_batch_limits(MAX_TCP_CONNECTIONS - connection_slots.available_permits());
        let mut framing_lost = false;
        loop {
            let frame = if ended {
                decoder.finish()
            } else {
                decoder.next_frame()
            };
            match frame {
                None => break,
                Some(Ok(bytes)) => {
                    batch_bytes += bytes.len();
                    receiver.accept(&bytes, &arrival, &mut preparer, &mut batch);
                }
                Some(Err(error @ FrameError::TooLong { .. })) => receiver.too_long(peer, &error),
                Some(Err(error)) => {
                    metrics::counter!("isms_syslog_dropped_total", "reason" => "framing")
                        .increment(1);
                    if let Some(held_back) = SENDER_PROBLEMS.allow() {
                        tracing::warn!(%peer, endpoint = %receiver.endpoint, %error, held_back, "syslog stream closed");
                    }
                    framing_lost = true;
                }
            }
            if batch.len() >= batch_messages || batch_bytes >= batch_byte_limit {
                if let Some(previous) = storing.take() {
                    stored(previous).await;
                }
                storing = Some(store_in_background(&receiver, &mut batch, &mut batch_bytes));
            }
        }
        if ended || framing_lost {
            if let Some(previous) = storing.take() {
                stored(previous).await;
            }
            receiver.store(batch).await;
            return;
        }
        store_when_idle(&mut storing, &receiver, &mut batch, &mut batch_bytes);
    }
}

/// Starts storing what a stream gathered, if anything, when no batch of it is being stored.
fn store_when_idle(
    storing: &mut Option<tokio::task::JoinHandle<()>>,
    receiver: &Arc<Receiver>,
    batch: &mut Vec<PreparedEvent>,
    batch_bytes: &mut usize,
) {
    if storing.is_none() && !batch.is_empty() {
        *storing = Some(store_in_background(receiver, batch, batch_bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_share_the_batch_budget_within_the_bounds() {
        assert_eq!(
            stream_batch_limits(0),
            (STREAM_BATCH_MESSAGES, STREAM_BATCH_BYTES)
        );
        assert_eq!(stream_batch_limits(4), (16_384, 4 * 1024 * 1024));
        assert_eq!(stream_batch_limits(64), (1_024, 1024 * 1024));
        assert_eq!(
            stream_batch_limits(MAX_TCP_CONNECTIONS),
            (STREAM_BATCH_MIN_MESSAGES, STREAM_BATCH_MIN_BYTES)
        );
        // All open streams together stay within the budget (or the minimum each).
        for open in 1..=MAX_TCP_CONNECTIONS {
            let (messages, bytes) = stream_batch_limits(open);
            assert!(
                messages * open <= STREAM_BUDGET_MESSAGES.max(STREAM_BATCH_MIN_MESSAGES * open)
            );
            assert!(bytes * open <= STREAM_BUDGET_BYTES.max(STREAM_BATCH_MIN_BYTES * open));
        }
    }
}
