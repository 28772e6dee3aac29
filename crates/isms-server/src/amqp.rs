//! The RabbitMQ consumer: MozDef's `eventtask` queue (or any other) into the store, at least once.
//!
//! Why it is shaped this way:
//!
//! - **Acknowledged only once durable.** The deliveries already waiting (at most `amqp.prefetch`, the
//!   broker's own bound on unacknowledged messages, and at most [`BATCH_MAX_BYTES`]) are decoded and
//!   normalized together, stored with one `Store::append`, and only then acknowledged with one
//!   `basic.ack` of the last delivery tag (`multiple`). A crash or a lost connection before that leaves
//!   them unacknowledged and RabbitMQ delivers them again: nothing is lost, a few may be stored twice.
//!   When the store fails, the batch is given back (`basic.nack`, requeue) and the consumer waits,
//!   doubling the wait while the store keeps failing.
//! - **A poisoned message never blocks the queue and is never lost.** A message that cannot become
//!   events (too large, not JSON, not an object, refused by `normalize`) is published unchanged, with
//!   its original properties and a header `x-isms-reason` saying what is wrong and where, to the
//!   dead-letter queue; only when the broker has confirmed that copy is the original acknowledged. A
//!   message is stored whole or dead-lettered whole, so replaying a dead letter after a fix never
//!   duplicates the events that were good in it.
//! - **The body is read like an HTTP ingestion body** ([`crate::ingest::body::decode_body`]: one
//!   object, an array of them, JSON lines), whatever the content type says: pika sends none, kombu
//!   `application/json` with `content_encoding` `utf-8` (a character set, not a compression).
//! - **Our own reconnection loop** rather than lapin's automatic recovery: every connection declares
//!   the topology again (the exchange, the queues, the binding) and starts from a clean channel, the
//!   wait doubles from [`RECONNECT_FIRST_DELAY`] to [`RECONNECT_MAX_DELAY`] and starts over after a
//!   connection that reached consuming, and the log says so at a bounded rate ([`LogBudget`]).
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use isms_config::AmqpConfig;
use isms_event::{Delivery as EventDelivery, Event, Origin, normalize_delivered};
use isms_store::Store;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};

use crate::ingest::body::{
    BodyError, BodyFormat, BodyLimits, ContentEncoding, DecodedItem, RejectionKind, decode_body,
};

/// Most message bytes decoded and stored in one batch (the first message of a batch always joins it).
pub const BATCH_MAX_BYTES: usize = 16 * 1024 * 1024;

/// The wait before the first reconnection attempt after a failure.
pub const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(500);

/// The longest wait between two connection attempts.
pub const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(30);

/// Time allowed to connect and declare the topology before the attempt counts as failed.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The first wait after the store refused a batch; doubles up to [`RECONNECT_MAX_DELAY`].
const STORE_RETRY_FIRST_DELAY: Duration = Duration::from_millis(500);

/// The header of a dead letter that says why it is one.
pub const REASON_HEADER: &str = "x-isms-reason";

/// Log lines about connections allowed per [`LOG_WINDOW`]; the rest are counted and reported later.
const LOG_LINES_PER_WINDOW: u32 = 5;
const LOG_WINDOW: Duration = Duration::from_secs(60);

/// What can stop one connection of the consumer (it then reconnects), or its start.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    /// `amqp.url` cannot be read (the message never repeats the URL: it holds a password).
    #[error("amqp.url is not a valid AMQP URL: {0}")]
    InvalidUrl(String),
    /// The broker or the connection failed during `action`.
    #[error("{action}: {source}")]
    Broker {
        /// What the consumer was doing, e.g. `declaring queue eventtask`.
        action: String,
        /// lapin's error (the broker's reply text when the broker refused).
        #[source]
        source: lapin::Error,
    },
    /// Connecting and declaring the topology took longer than allowed.
    #[error("connecting and declaring the queues took longer than {seconds} s")]
    SetupTimeout {
        /// The bound, in seconds.
        seconds: u64,
    },
    /// The broker cancelled the consumer (the queue was deleted, for instance).
    #[error("the broker cancelled the consumer of queue {queue}")]
    ConsumerCancelled {
        /// The queue consumed.
        queue: String,
    },
    /// A dead letter was not confirmed; the original stays unacknowledged and comes back.
    #[error("dead letter not confirmed by queue {queue}: {detail}")]
    DeadLetterRefused {
        /// The dead-letter queue.
        queue: String,
        /// What the broker answered.
        detail: String,
    },
    /// A queue, exchange or routing key longer than AMQP's 255 bytes.
    #[error("{name:?} is longer than the 255 bytes an AMQP name may have")]
    NameTooLong {
        /// The name.
        name: String,
    },
    /// The decoding task failed (it panicked or the runtime is shutting down).
    #[error("decoding task failed: {0}")]
    Decoding(String),
}

/// Runs `future` (a broker operation) and names `action` in its error.
async fn broker<T>(
    action: impl FnOnce() -> String,
    future: impl Future<Output = lapin::Result<T>>,
) -> Result<T, AmqpError> {
    future.await.map_err(|source| AmqpError::Broker {
        action: action(),
        source,
    })
}

/// Where the consumer reads, for the banner (no credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpConsumerInfo {
    /// The queue consumed.
    pub queue: String,
    /// The broker's `host:port`.
    pub broker: String,
}

/// Why a message goes to the dead-letter queue; the label of `isms_amqp_dead_lettered_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoisonKind {
    /// Larger than `amqp.max_message_bytes` (as sent or decompressed).
    TooLarge,
    /// Empty, or an empty array.
    Empty,
    /// Not JSON.
    NotJson,
    /// JSON, but a value other than an object where an event was expected.
    NotAnObject,
    /// An object that is too deep or too wide, or that `normalize` refused.
    InvalidEvent,
    /// More events than `http.max_items`.
    TooManyEvents,
    /// A `content_encoding` that is neither a character set we read nor a compression we undo, or a
    /// compressed body that cannot be decompressed.
    Encoding,
}

impl PoisonKind {
    /// The metric label.
    pub const fn label(&self) -> &'static str {
        match self {
            PoisonKind::TooLarge => "too_large",
            PoisonKind::Empty => "empty",
            PoisonKind::NotJson => "not_json",
            PoisonKind::NotAnObject => "not_an_object",
            PoisonKind::InvalidEvent => "invalid_event",
            PoisonKind::TooManyEvents => "too_many_events",
            PoisonKind::Encoding => "encoding",
        }
    }
}

/// A message that cannot be stored: what kind of problem, and the text of `x-isms-reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poison {
    /// The kind (the metric label).
    pub kind: PoisonKind,
    /// What is wrong and where, e.g. `body is not JSON: expected value at line 1 column 1`.
    pub reason: String,
}

/// How the bytes of one message are read.
#[derive(Debug, Clone)]
pub struct MessageLimits {
    /// `amqp.max_message_bytes`, also the bound after decompression.
    pub max_message_bytes: usize,
    /// Depth, width and item bounds (from `[http]`, the same as an HTTP body's).
    pub body: BodyLimits,
}

impl MessageLimits {
    /// The limits of a configuration: the message size from `[amqp]`, the rest from `[http]`.
    pub fn from_config(amqp: &AmqpConfig, http: &isms_config::HttpConfig) -> MessageLimits {
        let max_message_bytes = usize::try_from(amqp.max_message_bytes).unwrap_or(usize::MAX);
        let mut body = BodyLimits::from(http);
        body.max_decompressed_bytes = max_message_bytes;
        MessageLimits {
            max_message_bytes,
            body,
        }
    }
}

/// The [`ContentEncoding`] a message's `content_encoding` property asks for: none, or a character set
/// (kombu writes `utf-8`), means the body is as sent; `gzip` and `deflate` are undone.
fn content_encoding_of(property: Option<&str>) -> Result<ContentEncoding, Poison> {
    let value = property.unwrap_or("").trim();
    let is_utf8 = ["utf-8", "utf8", "us-ascii", "ascii"]
        .iter()
        .any(|charset| value.eq_ignore_ascii_case(charset));
    if is_utf8 {
        return Ok(ContentEncoding::Identity);
    }
    ContentEncoding::from_header(Some(value)).map_err(|_| Poison {
        kind: PoisonKind::Encoding,
        reason: format!(
            "content_encoding {value:?} is not supported: expected utf-8, gzip, deflate or none"
        ),
    })
}

/// Decodes and normalizes one message body into its events, or says why it cannot be stored.
///
/// `content_type` only adds a hint to a reason (pika sends none; a body is read as JSON whatever it
/// says). Every event of the message must be good: one bad event makes the whole message a dead letter.
pub fn decode_message(
    data: &[u8],
    content_encoding: Option<&str>,
    content_type: Option<&str>,
    limits: &MessageLimits,
    delivery: &EventDelivery,
) -> Result<Vec<Event>, Poison> {
    if data.len() > limits.max_message_bytes {
        return Err(Poison {
            kind: PoisonKind::TooLarge,
            reason: format!(
                "body is {} bytes, more than amqp.max_message_bytes ({})",
                data.len(),
                limits.max_message_bytes
            ),
        });
    }
    let encoding = content_encoding_of(content_encoding)?;
    let decoded =
        decode_body(data, encoding, BodyFormat::Events, &limits.body).map_err(|error| {
            let (kind, reason) = match error {
                BodyError::Empty => (
                    PoisonKind::Empty,
                    "body is empty: expected a JSON event, an array of them or JSON lines"
                        .to_owned(),
                ),
                BodyError::DecompressedTooLarge { limit } => (
                    PoisonKind::TooLarge,
                    format!("body decompresses to more than amqp.max_message_bytes ({limit})"),
                ),
                BodyError::TooManyItems { limit } => (
                    PoisonKind::TooManyEvents,
                    format!("body holds more than http.max_items ({limit}) events"),
                ),
                BodyError::BadCompression(detail) => (PoisonKind::Encoding, detail),
                BodyError::UnsupportedEncoding(value) => (
                    PoisonKind::Encoding,
                    format!("content_encoding {value:?} is not supported"),
                ),
            };
            Poison { kind, reason }
        })?;
    let count = decoded.items.len();
    if count == 0 {
        return Err(Poison {
            kind: PoisonKind::Empty,
            reason: "body holds no event (an empty array)".to_owned(),
        });
    }
    // "body is not JSON: ..." for a message of one value, "item 2 of 5 is not JSON: ..." otherwise.
    let subject = |index: usize, what: &str| {
        if count == 1 {
            format!("body {what}")
        } else {
            format!("item {index} of {count} {what}")
        }
    };
    let content_type_hint = content_type
        .filter(|value| !value.is_empty())
        .map(|value| format!(" (content_type {value:?})"))
        .unwrap_or_default();
    let mut events = Vec::with_capacity(count);
    for (index, item) in decoded.items.into_iter().enumerate() {
        match item {
            DecodedItem::Event(value) => match normalize_delivered(value, delivery) {
                Ok(event) => events.push(event),
                Err(error) => {
                    return Err(Poison {
                        kind: PoisonKind::InvalidEvent,
                        reason: format!("{}: {error}", subject(index, "is not a valid event")),
                    });
                }
            },
            DecodedItem::Rejected { kind, reason, .. } => {
                let detail = reason.strip_prefix(kind.reason_prefix()).unwrap_or(&reason);
                let (poison_kind, what, hint) = match kind {
                    RejectionKind::InvalidJson => (
                        PoisonKind::NotJson,
                        "is not JSON",
                        content_type_hint.as_str(),
                    ),
                    RejectionKind::NotAnObject => (PoisonKind::NotAnObject, "is not an event", ""),
                    RejectionKind::TooLarge | RejectionKind::BulkFraming => {
                        (PoisonKind::InvalidEvent, "is not a valid event", "")
                    }
                };
                return Err(Poison {
                    kind: poison_kind,
                    reason: format!("{}{hint}: {detail}", subject(index, what)),
                });
            }
        }
    }
    Ok(events)
}

/// At most [`LOG_LINES_PER_WINDOW`] connection log lines a minute: a broker that is down for a day
/// or a connection that flaps writes a few lines, not thousands.
#[derive(Debug, Default)]
pub struct LogBudget {
    window_start: Option<Instant>,
    lines_in_window: u32,
    suppressed: u64,
}

impl LogBudget {
    /// `Some(lines suppressed since the last one written)` when a line may be written now.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        let window_over = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= LOG_WINDOW);
        if window_over {
            self.window_start = Some(now);
            self.lines_in_window = 0;
        }
        if self.lines_in_window >= LOG_LINES_PER_WINDOW {
            self.suppressed += 1;
            return None;
        }
        self.lines_in_window += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// A doubling wait between `first` and `max`.
#[derive(Debug)]
struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// The wait to take now; the one after is twice as long (up to `max`).
    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    fn reset(&mut self) {
        self.next = self.first;
    }
}

/// What the consumer task keeps for its whole life.
struct Consumer {
    config: AmqpConfig,
    uri: AMQPUri,
    store: Arc<dyn Store>,
    limits: Arc<MessageLimits>,
    origin: Origin,
    /// `host:port`, for logs.
    broker_address: String,
    log_budget: LogBudget,
    connections_opened: u64,
}

/// Starts the consumer when `amqp.url` is set; it connects in the background (and keeps trying), so
/// isms starts whether or not the broker is up. `None` when the consumer is off.
pub fn start_amqp(
    config: &AmqpConfig,
    http: &isms_config::HttpConfig,
    store: Arc<dyn Store>,
) -> Result<Option<AmqpConsumerInfo>, AmqpError> {
    let url = config.url.trim();
    if url.is_empty() {
        return Ok(None);
    }
    let uri: AMQPUri = url.parse().map_err(|error: String| {
        // The parser's message may quote the whole URL, password included.
        AmqpError::InvalidUrl(if error.contains(url) {
            "it is not an absolute amqp:// or amqps:// URL".to_owned()
        } else {
            error
        })
    })?;
    let broker_address = format!("{}:{}", uri.authority.host, uri.authority.port);
    let info = AmqpConsumerInfo {
        queue: config.queue.clone(),
        broker: broker_address.clone(),
    };
    let consumer = Consumer {
        config: config.clone(),
        uri,
        store,
        limits: Arc::new(MessageLimits::from_config(config, http)),
        origin: Origin {
            peer: Some(broker_address.clone()),
            endpoint: format!("amqp:{}", config.queue),
            key_name: None,
        },
        broker_address,
        log_budget: LogBudget::default(),
        connections_opened: 0,
    };
    metrics::gauge!("isms_amqp_connected").set(0.0);
    for name in [
        "isms_amqp_messages_total",
        "isms_amqp_events_total",
        "isms_amqp_reconnects_total",
        "isms_amqp_requeued_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    tokio::spawn(consumer.run());
    Ok(Some(info))
}

impl Consumer {
    async fn run(mut self) {
        let mut backoff = Backoff::new(RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY);
        loop {
            // Set once the connection consumes: the back-off then starts over.
            let mut reached_consuming = false;
            let error = match self.session(&mut reached_consuming).await {
                Ok(never) => match never {},
                Err(error) => error,
            };
            metrics::gauge!("isms_amqp_connected").set(0.0);
            if reached_consuming {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            if let Some(suppressed) = self.log_budget.allow(Instant::now()) {
                tracing::warn!(
                    broker = %self.broker_address,
                    queue = %self.config.queue,
                    %error,
                    retry_in_ms = delay.as_millis() as u64,
                    suppressed_log_lines = suppressed,
                    "amqp connection lost or refused; reconnecting"
                );
            }
            tokio::time::sleep(delay).await;
            metrics::counter!("isms_amqp_reconnects_total").increment(1);
        }
    }

    /// One connection: connect, declare, consume until something fails.
    async fn session(
        &mut self,
        reached_consuming: &mut bool,
    ) -> Result<std::convert::Infallible, AmqpError> {
        let setup = tokio::time::timeout(SETUP_TIMEOUT, self.setup())
            .await
            .map_err(|_| AmqpError::SetupTimeout {
                seconds: SETUP_TIMEOUT.as_secs(),
            })??;
        let Setup {
            connection: _connection,
            channel,
            dead_letters,
            mut consumer,
        } = setup;
        *reached_consuming = true;
        self.connections_opened += 1;
        metrics::gauge!("isms_amqp_connected").set(1.0);
        if let Some(suppressed) = self.log_budget.allow(Instant::now()) {
            tracing::info!(
                broker = %self.broker_address,
                queue = %self.config.queue,
                prefetch = self.config.prefetch,
                connection = self.connections_opened,
                suppressed_log_lines = suppressed,
                "amqp consumer connected"
            );
        }
        let mut store_backoff = Backoff::new(STORE_RETRY_FIRST_DELAY, RECONNECT_MAX_DELAY);
        loop {
            let batch = self.next_batch(&mut consumer).await?;
            self.handle_batch(batch, &channel, &dead_letters, &mut store_backoff)
                .await?;
        }
    }

    async fn setup(&self) -> Result<Setup, AmqpError> {
        let config = &self.config;
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("isms consumer of {}", config.queue).into());
        let connection = broker(
            || format!("connecting to {}", self.broker_address),
            Connection::connect_uri(self.uri.clone(), properties),
        )
        .await?;
        let channel = broker(
            || "opening a channel".to_owned(),
            connection.create_channel(),
        )
        .await?;
        let prefetch = u16::try_from(config.prefetch).unwrap_or(u16::MAX);
        broker(
            || format!("setting prefetch {prefetch}"),
            channel.basic_qos(prefetch, BasicQosOptions::default()),
        )
        .await?;
        let durable_queue = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let queue = short_string(&config.queue)?;
        broker(
            || format!("declaring queue {}", config.queue),
            channel.queue_declare(queue.clone(), durable_queue, FieldTable::default()),
        )
        .await?;
        broker(
            || format!("declaring dead-letter queue {}", config.dead_letter_queue),
            channel.queue_declare(
                short_string(&config.dead_letter_queue)?,
                durable_queue,
                FieldTable::default(),
            ),
        )
        .await?;
        if !config.exchange.is_empty() {
            let exchange = short_string(&config.exchange)?;
            broker(
                || format!("declaring exchange {}", config.exchange),
                channel.exchange_declare(
                    exchange.clone(),
                    ExchangeKind::Direct,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await?;
            broker(
                || {
                    format!(
                        "binding queue {} to exchange {} with routing key {}",
                        config.queue, config.exchange, config.routing_key
                    )
                },
                channel.queue_bind(
                    queue.clone(),
                    exchange,
                    short_string(&config.routing_key)?,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await?;
        }
        let dead_letters = broker(
            || "opening the dead-letter channel".to_owned(),
            connection.create_channel(),
        )
        .await?;
        broker(
            || "turning on publisher confirms".to_owned(),
            dead_letters.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        let consumer_tag = format!(
            "isms-{}-{}",
            std::process::id(),
            self.connections_opened + 1
        );
        let consumer = broker(
            || format!("consuming queue {}", config.queue),
            channel.basic_consume(
                queue,
                consumer_tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        Ok(Setup {
            connection,
            channel,
            dead_letters,
            consumer,
        })
    }

    /// Waits for a delivery, then takes the ones already waiting behind it (bounded by the prefetch
    /// count and [`BATCH_MAX_BYTES`]).
    async fn next_batch(&self, consumer: &mut lapin::Consumer) -> Result<Vec<Delivery>, AmqpError> {
        let cancelled = || AmqpError::ConsumerCancelled {
            queue: self.config.queue.clone(),
        };
        let received = |result: lapin::Result<Delivery>| {
            result.map_err(|source| AmqpError::Broker {
                action: format!("consuming queue {}", self.config.queue),
                source,
            })
        };
        let first = received(consumer.next().await.ok_or_else(cancelled)?)?;
        let mut bytes = first.data.len();
        let mut batch = vec![first];
        let most = usize::try_from(self.config.prefetch).unwrap_or(usize::MAX);
        while batch.len() < most && bytes < BATCH_MAX_BYTES {
            match consumer.next().now_or_never() {
                None => break,
                Some(None) => return Err(cancelled()),
                Some(Some(result)) => {
                    let delivery = received(result)?;
                    bytes += delivery.data.len();
                    batch.push(delivery);
                }
            }
        }
        Ok(batch)
    }

    /// Stores the good messages of `batch`, dead-letters the others, then acknowledges them all.
    async fn handle_batch(
        &self,
        batch: Vec<Delivery>,
        channel: &Channel,
        dead_letters: &Channel,
        store_backoff: &mut Backoff,
    ) -> Result<(), AmqpError> {
        let Some(last_tag) = batch.last().map(|delivery| delivery.delivery_tag) else {
            return Ok(());
        };
        let limits = self.limits.clone();
        let delivery = EventDelivery::new(&self.origin, jiff::Timestamp::now());
        let (batch, outcomes) = tokio::task::spawn_blocking(move || {
            let outcomes: Vec<Result<Vec<Event>, Poison>> = batch
                .iter()
                .map(|message| {
                    let properties = &message.properties;
                    decode_message(
                        &message.data,
                        properties
                            .content_encoding()
                            .as_ref()
                            .map(ShortString::as_str),
                        properties.content_type().as_ref().map(ShortString::as_str),
                        &limits,
                        &delivery,
                    )
                })
                .collect();
            (batch, outcomes)
        })
        .await
        .map_err(|error| AmqpError::Decoding(error.to_string()))?;

        let mut events = Vec::new();
        let mut good_messages = 0u64;
        let mut poisoned = Vec::new();
        for (message, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Ok(message_events) => {
                    good_messages += 1;
                    events.extend(message_events);
                }
                Err(poison) => poisoned.push((message, poison)),
            }
        }
        let event_count = events.len() as u64;
        if !events.is_empty()
            && let Err(error) = self.store.append(events).await
        {
            let delay = store_backoff.next_delay();
            tracing::error!(
                %error,
                queue = %self.config.queue,
                messages = batch.len(),
                retry_in_ms = delay.as_millis() as u64,
                "amqp messages not stored; giving them back to the broker"
            );
            broker(
                || "giving back messages that could not be stored".to_owned(),
                channel.basic_nack(
                    last_tag,
                    BasicNackOptions {
                        multiple: true,
                        requeue: true,
                    },
                ),
            )
            .await?;
            metrics::counter!("isms_amqp_requeued_total").increment(batch.len() as u64);
            tokio::time::sleep(delay).await;
            return Ok(());
        }
        store_backoff.reset();

        if let Err(error) = self.dead_letter(&poisoned, dead_letters).await {
            // The stored ones are acknowledged one by one; the poisoned ones stay unacknowledged and
            // come back on the next connection, which declares the dead-letter queue again.
            let poisoned_tags: Vec<u64> = poisoned
                .iter()
                .map(|(message, _)| message.delivery_tag)
                .collect();
            for message in batch
                .iter()
                .filter(|message| !poisoned_tags.contains(&message.delivery_tag))
            {
                broker(
                    || "acknowledging stored messages".to_owned(),
                    channel.basic_ack(message.delivery_tag, BasicAckOptions::default()),
                )
                .await?;
            }
            self.count_stored(good_messages, event_count);
            return Err(error);
        }
        broker(
            || "acknowledging stored messages".to_owned(),
            channel.basic_ack(last_tag, BasicAckOptions { multiple: true }),
        )
        .await?;
        self.count_stored(good_messages, event_count);
        for (_, poison) in &poisoned {
            metrics::counter!("isms_amqp_dead_lettered_total", "reason" => poison.kind.label())
                .increment(1);
        }
        Ok(())
    }

    fn count_stored(&self, messages: u64, events: u64) {
        metrics::counter!("isms_amqp_messages_total").increment(messages);
        metrics::counter!("isms_amqp_events_total").increment(events);
    }

    /// Publishes each poisoned message, unchanged but for the reason header, to the dead-letter queue
    /// and waits until the broker confirms every copy.
    async fn dead_letter(
        &self,
        poisoned: &[(&Delivery, Poison)],
        dead_letters: &Channel,
    ) -> Result<(), AmqpError> {
        if poisoned.is_empty() {
            return Ok(());
        }
        let queue = &self.config.dead_letter_queue;
        let routing_key = short_string(queue)?;
        let mut confirms = Vec::with_capacity(poisoned.len());
        for (message, poison) in poisoned {
            if let Some(held_back) = POISON_LOGS.allow() {
                tracing::warn!(
                    queue = %self.config.queue,
                    dead_letter_queue = %queue,
                    delivery_tag = message.delivery_tag,
                    reason = %poison.reason,
                    held_back,
                    "amqp message cannot be stored; moving it to the dead-letter queue"
                );
            }
            let mut headers = message.properties.headers().clone().unwrap_or_default();
            headers.insert(
                REASON_HEADER.into(),
                AMQPValue::LongString(LongString::from(poison.reason.as_bytes())),
            );
            let properties = dead_letter_properties(&message.properties, headers);
            let confirm = broker(
                || format!("publishing to dead-letter queue {queue}"),
                dead_letters.basic_publish(
                    ShortString::default(),
                    routing_key.clone(),
                    // Mandatory: a dead-letter queue deleted meanwhile returns the copy instead of
                    // dropping it.
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &message.data,
                    properties,
                ),
            )
            .await?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            let confirmation = broker(
                || format!("waiting for the confirm of dead-letter queue {queue}"),
                confirm,
            )
            .await?;
            let refused = |detail: String| AmqpError::DeadLetterRefused {
                queue: queue.clone(),
                detail,
            };
            match confirmation {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(returned)) => {
                    return Err(refused(format!(
                        "returned unroutable ({} {})",
                        returned.reply_code, returned.reply_text
                    )));
                }
                Confirmation::Nack(_) => return Err(refused("the broker refused it".to_owned())),
                Confirmation::NotRequested => {
                    return Err(refused("publisher confirms are not on".to_owned()));
                }
            }
        }
        Ok(())
    }
}

/// What one connection holds while it consumes.
struct Setup {
    /// Kept so the connection lives as long as its channels.
    connection: Connection,
    channel: Channel,
    dead_letters: Channel,
    consumer: lapin::Consumer,
}

/// An AMQP short string (configuration checks the length, so this does not fail in practice).
fn short_string(text: &str) -> Result<ShortString, AmqpError> {
    ShortString::try_new(text).map_err(|_| AmqpError::NameTooLong {
        name: text.to_owned(),
    })
}

/// Dead-lettering logged at a bounded rate: a producer can publish garbage as fast as it likes.
static POISON_LOGS: crate::log_budget::LogBudget =
    crate::log_budget::LogBudget::new(10, std::time::Duration::from_secs(60));

/// The properties of a dead letter: the original's, with the reason header, made persistent (a
/// dead letter may wait days for someone to look), without `user-id` (RabbitMQ refuses a publish
/// whose user-id is not the publishing user's) and without `expiration` (it would silently expire
/// out of the dead-letter queue); the two are kept as headers.
fn dead_letter_properties(original: &BasicProperties, mut headers: FieldTable) -> BasicProperties {
    let mut properties = BasicProperties::default().with_delivery_mode(2);
    if let Some(value) = original.content_type() {
        properties = properties.with_content_type(value.clone());
    }
    if let Some(value) = original.content_encoding() {
        properties = properties.with_content_encoding(value.clone());
    }
    if let Some(value) = original.priority() {
        properties = properties.with_priority(*value);
    }
    if let Some(value) = original.correlation_id() {
        properties = properties.with_correlation_id(value.clone());
    }
    if let Some(value) = original.reply_to() {
        properties = properties.with_reply_to(value.clone());
    }
    if let Some(value) = original.message_id() {
        properties = properties.with_message_id(value.clone());
    }
    if let Some(value) = original.timestamp() {
        properties = properties.with_timestamp(*value);
    }
    if let Some(value) = original.kind() {
        properties = properties.with_type(value.clone());
    }
    if let Some(value) = original.app_id() {
        properties = properties.with_app_id(value.clone());
    }
    if let Some(value) = original.cluster_id() {
        properties = properties.with_cluster_id(value.clone());
    }
    for (name, value) in [
        ("x-isms-original-user-id", original.user_id()),
        ("x-isms-original-expiration", original.expiration()),
    ] {
        if let Some(value) = value {
            headers.insert(
                name.into(),
                AMQPValue::LongString(LongString::from(value.as_str().as_bytes())),
            );
        }
    }
    properties.with_headers(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn dead_letters_are_persistent_and_drop_what_the_broker_would_refuse_or_expire() {
        let original = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(1)
            .with_user_id("producer".into())
            .with_expiration("60000".into())
            .with_message_id("m-1".into());
        let mut headers = FieldTable::default();
        headers.insert(
            REASON_HEADER.into(),
            AMQPValue::LongString(LongString::from(&b"body is not JSON"[..])),
        );
        let copy = dead_letter_properties(&original, headers);
        assert_eq!(copy.delivery_mode(), &Some(2));
        assert_eq!(copy.user_id(), &None);
        assert_eq!(copy.expiration(), &None);
        assert_eq!(copy.content_type(), original.content_type());
        assert_eq!(copy.message_id(), original.message_id());
        let headers = copy.headers().clone().expect("headers");
        let inner = headers.inner();
        for name in [
            REASON_HEADER,
            "x-isms-original-user-id",
            "x-isms-original-expiration",
        ] {
            assert!(
                inner.keys().any(|key| key.as_str() == name),
                "{name} missing: {inner:?}"
            );
        }
    }

    fn limits() -> MessageLimits {
        MessageLimits::from_config(&AmqpConfig::default(), &isms_config::HttpConfig::default())
    }

    fn delivery() -> EventDelivery {
        let origin = Origin {
            peer: Some("127.0.0.1:5672".to_owned()),
            endpoint: "amqp:eventtask".to_owned(),
            key_name: None,
        };
        EventDelivery::new(&origin, jiff::Timestamp::now())
    }

    fn decode(
        body: &[u8],
        encoding: Option<&str>,
        content_type: Option<&str>,
    ) -> Result<Vec<Event>, Poison> {
        decode_message(body, encoding, content_type, &limits(), &delivery())
    }

    fn poison(body: &[u8]) -> Poison {
        decode(body, None, None).expect_err("a poisoned message")
    }

    #[test]
    fn pika_and_kombu_bodies_become_events() {
        let pika = br#"{"summary": "failed login", "details": {"username": "jdoe"}}"#;
        assert_eq!(decode(pika, None, None).unwrap().len(), 1);
        let kombu = decode(pika, Some("utf-8"), Some("application/json")).unwrap();
        assert_eq!(kombu.len(), 1);
        let array = br#"[{"summary": "one"}, {"summary": "two"}]"#;
        assert_eq!(decode(array, Some("UTF8"), None).unwrap().len(), 2);
        let lines = b"{\"summary\": \"one\"}\n{\"summary\": \"two\"}\n{\"summary\": \"three\"}\n";
        assert_eq!(decode(lines, None, None).unwrap().len(), 3);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(pika).unwrap();
        let gzipped = gzip.finish().unwrap();
        assert_eq!(decode(&gzipped, Some("gzip"), None).unwrap().len(), 1);
    }

    #[test]
    fn poisoned_bodies_say_what_and_where() {
        let not_json = poison(b"hello");
        assert_eq!(not_json.kind, PoisonKind::NotJson);
        assert_eq!(
            not_json.reason,
            "body is not JSON: expected value at line 1 column 1"
        );
        let number = poison(b"42");
        assert_eq!(number.kind, PoisonKind::NotAnObject);
        assert_eq!(
            number.reason,
            "body is not an event: expected a JSON object, found a number"
        );
        let mixed = poison(br#"[{"summary": "good"}, 7]"#);
        assert_eq!(mixed.kind, PoisonKind::NotAnObject);
        assert_eq!(
            mixed.reason,
            "item 1 of 2 is not an event: expected a JSON object, found a number"
        );
        let second_line = poison(b"{\"summary\": \"good\"}\n{\"summary\": \n");
        assert_eq!(second_line.kind, PoisonKind::NotJson);
        assert!(
            second_line.reason.starts_with("item 1 of 2 is not JSON: ")
                && second_line.reason.ends_with("at line 3 column 0"),
            "{}",
            second_line.reason
        );
        let bad_time = poison(br#"{"summary": "x", "timestamp": "yesterday"}"#);
        assert_eq!(bad_time.kind, PoisonKind::InvalidEvent);
        assert!(
            bad_time.reason.starts_with("body is not a valid event: ")
                && bad_time.reason.contains("timestamp"),
            "{}",
            bad_time.reason
        );
        assert_eq!(poison(b"").kind, PoisonKind::Empty);
        assert_eq!(poison(b"  \n").kind, PoisonKind::Empty);
        assert_eq!(poison(b"[]").reason, "body holds no event (an empty array)");
        let big = vec![b' '; 1024 * 1024 + 1];
        let too_large = poison(&big);
        assert_eq!(too_large.kind, PoisonKind::TooLarge);
        assert_eq!(
            too_large.reason,
            "body is 1048577 bytes, more than amqp.max_message_bytes (1048576)"
        );
        let binary = decode(
            b"\x80\x04K\x2a.",
            Some("binary"),
            Some("application/x-python-serialize"),
        )
        .unwrap_err();
        assert_eq!(binary.kind, PoisonKind::Encoding);
        assert!(binary.reason.contains("\"binary\""), "{}", binary.reason);
        let pickle = decode(
            b"\x80\x04K\x2a.",
            None,
            Some("application/x-python-serialize"),
        )
        .unwrap_err();
        assert_eq!(pickle.kind, PoisonKind::NotJson);
        assert!(
            pickle.reason.starts_with(
                "body is not JSON (content_type \"application/x-python-serialize\"): "
            ),
            "{}",
            pickle.reason
        );
        let broken_gzip = decode(b"\x1f\x8b\x08\x00garbage", Some("gzip"), None).unwrap_err();
        assert_eq!(broken_gzip.kind, PoisonKind::Encoding);
    }

    #[test]
    fn the_log_budget_allows_a_few_lines_a_minute_and_counts_the_rest() {
        let mut budget = LogBudget::default();
        let start = Instant::now();
        for _ in 0..LOG_LINES_PER_WINDOW {
            assert_eq!(budget.allow(start), Some(0));
        }
        assert_eq!(budget.allow(start + Duration::from_secs(1)), None);
        assert_eq!(budget.allow(start + Duration::from_secs(2)), None);
        assert_eq!(budget.allow(start + LOG_WINDOW), Some(2));
        assert_eq!(budget.allow(start + LOG_WINDOW), Some(0));
    }

    #[test]
    fn the_back_off_doubles_to_its_bound_and_starts_over() {
        let mut backoff = Backoff::new(RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY);
        let delays: Vec<u128> = (0..9).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(500));
    }
}
