//! The syslog receivers: UDP datagrams and TCP streams into the store, through `isms_syslog`.
//!
//! Each receiver gathers what arrived together (the datagrams already waiting, or the frames of one
//! read) into one batch of at most [`BATCH_MESSAGES`], parses and normalizes every message with its
//! sender as the origin, and appends the batch: one commit for many messages. Syslog has no
//! acknowledgment, so a TCP reader simply does not read on while its batch is being stored (the sender
//! waits, nothing queues up in memory). A message over `syslog.max_message_bytes` is dropped, counted
//! (`isms_syslog_dropped_total`) and logged, and the stream goes on; a TCP stream whose octet count is
//! not a number is closed, since nothing after it can be framed. Connections are bounded.
use std::net::SocketAddr;
use std::sync::Arc;

use isms_config::SyslogConfig;
use isms_event::{Delivery, Origin, normalize_delivered};
use isms_store::Store;
use isms_syslog::{FrameDecoder, FrameError, ParseContext};
use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Most messages stored in one append.
pub const BATCH_MESSAGES: usize = 512;

/// The longest UDP payload there is.
const MAX_UDP_PAYLOAD_BYTES: usize = 65_535;

/// Most TCP connections served at once; more are closed at once with a warning.
const MAX_TCP_CONNECTIONS: usize = 1024;

/// Where the receivers listen (the real ports when the configuration said port 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct SyslogListeners {
    /// The UDP receiver's address, if it runs.
    pub udp: Option<SocketAddr>,
    /// The TCP receiver's address, if it runs.
    pub tcp: Option<SocketAddr>,
}

/// What every receiver task shares.
struct Receiver {
    store: Arc<dyn Store>,
    max_message_bytes: usize,
    time_zone: TimeZone,
    /// `syslog:udp:5514` or `syslog:tcp:5514`.
    endpoint: String,
}

/// Binds the configured receivers and starts them. An empty address leaves a receiver off.
pub async fn start_syslog(
    config: &SyslogConfig,
    store: Arc<dyn Store>,
) -> std::io::Result<SyslogListeners> {
    let offset = isms_config::parse_fixed_time_zone(&config.time_zone).unwrap_or(0);
    let time_zone = TimeZone::fixed(Offset::from_seconds(offset).unwrap_or(Offset::UTC));
    let max_message_bytes = config.max_message_bytes as usize;
    let receiver = |transport: &str, address: SocketAddr| {
        Arc::new(Receiver {
            store: store.clone(),
            max_message_bytes,
            time_zone: time_zone.clone(),
            endpoint: format!("syslog:{transport}:{}", address.port()),
        })
    };
    let mut listeners = SyslogListeners::default();
    if !config.udp_listen.is_empty() {
        let socket = UdpSocket::bind(&config.udp_listen)
            .await
            .map_err(|error| named(error, "udp", &config.udp_listen))?;
        let address = socket.local_addr()?;
        listeners.udp = Some(address);
        tokio::spawn(udp_loop(socket, receiver("udp", address)));
    }
    if !config.tcp_listen.is_empty() {
        let listener = TcpListener::bind(&config.tcp_listen)
            .await
            .map_err(|error| named(error, "tcp", &config.tcp_listen))?;
        let address = listener.local_addr()?;
        listeners.tcp = Some(address);
        tokio::spawn(tcp_loop(listener, receiver("tcp", address)));
    }
    Ok(listeners)
}

/// A bind error that says which receiver and address it was.
fn named(error: std::io::Error, transport: &str, address: &str) -> std::io::Error {
    std::io::Error::new(
        error.kind(),
        format!("syslog {transport} receiver on {address}: {error}"),
    )
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
        let origin = Origin {
            peer: Some(peer.to_string()),
            endpoint: self.endpoint.clone(),
            key_name: None,
        };
        Arrival {
            peer,
            peer_host: peer.ip().to_string(),
            context: ParseContext {
                received,
                time_zone: self.time_zone.clone(),
            },
            delivery: Delivery::new(&origin, received),
        }
    }

    /// Parses and normalizes one message into `events`; counts what cannot be stored.
    fn accept(&self, bytes: &[u8], arrival: &Arrival, events: &mut Vec<isms_event::Event>) {
        let message = isms_syslog::parse(bytes, &arrival.context);
        let raw = message.to_event(Some(&arrival.peer_host));
        match normalize_delivered(raw, &arrival.delivery) {
            Ok(event) => events.push(event),
            Err(error) => {
                // Only an empty message has neither summary nor details; nothing to keep.
                metrics::counter!("isms_syslog_dropped_total", "reason" => "invalid").increment(1);
                tracing::debug!(peer = %arrival.peer, %error, "syslog message not stored");
            }
        }
    }

    /// A datagram of `length` bytes at the start of `buffer` (longer than the limit: dropped).
    fn accept_datagram(
        &self,
        buffer: &[u8],
        length: usize,
        arrival: &Arrival,
        events: &mut Vec<isms_event::Event>,
    ) {
        if length > self.max_message_bytes {
            let limit = self.max_message_bytes;
            self.too_long(arrival.peer, &FrameError::TooLong { length, limit });
        } else {
            self.accept(&buffer[..length], arrival, events);
        }
    }

    fn too_long(&self, peer: SocketAddr, error: &FrameError) {
        metrics::counter!("isms_syslog_dropped_total", "reason" => "too_long").increment(1);
        tracing::warn!(%peer, endpoint = %self.endpoint, %error, "syslog message dropped");
    }

    async fn store(&self, events: Vec<isms_event::Event>) {
        if events.is_empty() {
            return;
        }
        let count = events.len() as u64;
        match self.store.append(events).await {
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

async fn udp_loop(socket: UdpSocket, receiver: Arc<Receiver>) {
    // One byte more than allowed, so a longer datagram shows itself (the rest of it is cut off); no
    // datagram is longer than UDP's own limit.
    let mut buffer = vec![0u8; receiver.max_message_bytes.min(MAX_UDP_PAYLOAD_BYTES) + 1];
    loop {
        let (length, peer) = match socket.recv_from(&mut buffer).await {
            Ok(datagram) => datagram,
            Err(error) => {
                tracing::warn!(%error, "syslog udp receive failed");
                continue;
            }
        };
        let received = Timestamp::now();
        let mut arrival = receiver.arrival(peer, received);
        let mut events = Vec::new();
        receiver.accept_datagram(&buffer, length, &arrival, &mut events);
        // The datagrams already waiting join this batch (usually from the same sender: a relay).
        while events.len() < BATCH_MESSAGES {
            let Ok((length, peer)) = socket.try_recv_from(&mut buffer) else {
                break;
            };
            if peer != arrival.peer {
                arrival = receiver.arrival(peer, received);
            }
            receiver.accept_datagram(&buffer, length, &arrival, &mut events);
        }
        receiver.store(events).await;
    }
}

async fn tcp_loop(listener: TcpListener, receiver: Arc<Receiver>) {
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(connection) => connection,
            Err(error) => {
                tracing::warn!(%error, "syslog tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = MAX_TCP_CONNECTIONS, "syslog tcp connection refused: too many open");
            continue;
        };
        let receiver = receiver.clone();
        tokio::spawn(async move {
            read_stream(stream, peer, &receiver).await;
            drop(permit);
        });
    }
}

async fn read_stream(mut stream: TcpStream, peer: SocketAddr, receiver: &Receiver) {
    let mut decoder = FrameDecoder::new(receiver.max_message_bytes);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let ended = match stream.read(&mut buffer).await {
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
        let mut events = Vec::new();
        let mut framing_lost = false;
        loop {
            let frame = if ended {
                decoder.finish()
            } else {
                decoder.next_frame()
            };
            match frame {
                None => break,
                Some(Ok(bytes)) => receiver.accept(&bytes, &arrival, &mut events),
                Some(Err(error @ FrameError::TooLong { .. })) => receiver.too_long(peer, &error),
                Some(Err(error)) => {
                    tracing::warn!(%peer, %error, "syslog tcp stream closed");
                    framing_lost = true;
                }
            }
            if events.len() >= BATCH_MESSAGES {
                receiver.store(std::mem::take(&mut events)).await;
            }
        }
        receiver.store(events).await;
        if ended || framing_lost {
            return;
        }
    }
}
