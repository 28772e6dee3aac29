//! The AMQP consumer of a real `isms serve` against the real RabbitMQ on 127.0.0.1:5672 (guest/guest):
//! messages shaped exactly as pika and kombu (MozDef's loginput) publish them, messages waiting in the
//! durable queue before isms starts, poisoned messages moved to the dead-letter queue with their
//! reason, a server killed while messages flow (nothing lost), and connections refused, cut and closed
//! by the broker (reconnection).
//!
//! Every test declares its own exchange and queues under a unique name, so tests run side by side, and
//! deletes them when it ends (also when it fails). Without a reachable RabbitMQ a test is skipped with a
//! note, and fails when `CI` is set.
// Shared with `server.rs`; this file uses only part of it.
#[allow(dead_code)]
mod harness;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use harness::{ServerProcess, required_tool, run_bounded, run_test};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(60);

/// The broker every test uses (`ISMS_TEST_AMQP_URL` overrides it).
fn broker_url() -> String {
    std::env::var("ISMS_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// The broker's `host:port` as the banner shows it.
fn broker_address() -> String {
    let url: lapin::uri::AMQPUri = broker_url().parse().expect("ISMS_TEST_AMQP_URL parses");
    format!("{}:{}", url.authority.host, url.authority.port)
}

const HOW_TO_START: &str = "start RabbitMQ on 127.0.0.1:5672 (guest/guest): `apt-get install \
     rabbitmq-server` then `rabbitmq-server -detached` as root, or run scripts/test, which does both";

/// A connection to the broker, or `None` (with a note) when it cannot be reached; fails under `CI`.
async fn connect_or_skip() -> Option<Connection> {
    let attempt = tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(&broker_url(), ConnectionProperties::default()),
    )
    .await;
    let problem = match attempt {
        Ok(Ok(connection)) => return Some(connection),
        Ok(Err(error)) => error.to_string(),
        Err(_) => "no answer within 10 s".to_string(),
    };
    required_tool(None::<()>, &format!("RabbitMQ ({problem}; {HOW_TO_START})"));
    None
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A test's own exchange and queues on the real broker, deleted when dropped.
struct TestBroker {
    /// Held for as long as the channel is used.
    _connection: Connection,
    channel: Channel,
    exchange: String,
    queue: String,
    routing_key: String,
    dead_letter_queue: String,
}

impl TestBroker {
    /// Names unique to this test and process; declares nothing yet.
    async fn new(test: &str) -> Option<TestBroker> {
        let connection = connect_or_skip().await?;
        let channel = connection.create_channel().await.expect("test channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("publisher confirms for the test channel");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.subsec_nanos())
            .unwrap_or_default();
        let unique = format!(
            "isms-test-{test}-{}-{nanos}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        Some(TestBroker {
            _connection: connection,
            channel,
            exchange: format!("{unique}.x"),
            queue: format!("{unique}.q"),
            routing_key: format!("{unique}.rk"),
            dead_letter_queue: format!("{unique}.dead"),
        })
    }

    /// The environment that points isms at this test's names.
    fn server_env(&self, url: &str) -> Vec<(String, String)> {
        vec![
            ("ISMS_AMQP_URL".into(), url.into()),
            ("ISMS_AMQP_EXCHANGE".into(), self.exchange.clone()),
            ("ISMS_AMQP_QUEUE".into(), self.queue.clone()),
            ("ISMS_AMQP_ROUTING_KEY".into(), self.routing_key.clone()),
            (
                "ISMS_AMQP_DEAD_LETTER_QUEUE".into(),
                self.dead_letter_queue.clone(),
            ),
        ]
    }

    /// Starts isms consuming this test's queue through `url`, with `extra` variables.
    fn start_isms(&self, url: &str, extra: &[(&str, &str)]) -> ServerProcess {
        let mut env = self.server_env(url);
        env.extend(
            extra
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string())),
        );
        let env: Vec<(&str, &str)> = env
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        ServerProcess::start(&env)
    }

    /// Declares what MozDef's publishers and isms declare (direct durable exchange, durable queue,
    /// binding, durable dead-letter queue), so messages published before isms runs are kept.
    async fn declare(&self) {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        self.channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare the exchange");
        for queue in [&self.queue, &self.dead_letter_queue] {
            self.channel
                .queue_declare(queue.as_str().into(), durable, FieldTable::default())
                .await
                .expect("declare a queue");
        }
        self.channel
            .queue_bind(
                self.queue.as_str().into(),
                self.exchange.as_str().into(),
                self.routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind the queue");
    }

    /// Publishes `body` to the exchange with `properties` and waits for the broker's confirm.
    async fn publish(&self, body: &[u8], properties: BasicProperties) {
        let confirmation = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                self.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("publisher confirm");
        assert!(confirmation.is_ack(), "the broker refused a test message");
    }

    /// How many messages wait in `queue` (a passive declare).
    async fn waiting(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("passive declare")
            .message_count()
    }

    /// Takes `count` messages off the dead-letter queue (waiting up to 15 s for them to arrive).
    async fn take_dead_letters(&self, count: usize) -> Vec<lapin::message::BasicGetMessage> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut taken = Vec::new();
        while taken.len() < count {
            let message = self
                .channel
                .basic_get(
                    self.dead_letter_queue.as_str().into(),
                    BasicGetOptions { no_ack: true },
                )
                .await
                .expect("basic.get on the dead-letter queue");
            match message {
                Some(message) => taken.push(message),
                None if Instant::now() > deadline => {
                    panic!("{} of {count} dead letters after 15 s", taken.len())
                }
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        taken
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        // On a connection of its own, on a thread of its own: this runs inside the test's runtime,
        // also while a failed test unwinds.
        let exchange = self.exchange.clone();
        let queues = [self.queue.clone(), self.dead_letter_queue.clone()];
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                let url = broker_url();
                let connect = Connection::connect(&url, ConnectionProperties::default());
                let Ok(Ok(connection)) =
                    tokio::time::timeout(Duration::from_secs(10), connect).await
                else {
                    return;
                };
                let Ok(channel) = connection.create_channel().await else {
                    return;
                };
                for queue in queues {
                    let _ = channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
                let _ = channel
                    .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                    .await;
                let _ = connection.close(200, "test done".into()).await;
            });
        });
        let _ = cleanup.join();
    }
}

/// `json.dumps(value)` as Python writes it (default separators `", "` and `": "`, `ensure_ascii`):
/// the bytes pika and kombu publish.
fn python_json_dumps(value: &Value) -> String {
    fn string(text: &str, out: &mut String) {
        out.push('"');
        for character in text.chars() {
            match character {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || !c.is_ascii() => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                out.push('{');
                for (index, (key, member)) in map.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    string(key, out);
                    out.push_str(": ");
                    write(member, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    write(item, out);
                }
                out.push(']');
            }
            Value::String(text) => string(text, out),
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// A MozDef event as loginput's producers send it.
fn mozdef_event(run: &str, summary: &str, sequence: u64) -> Value {
    json!({
        "timestamp": "2026-11-21T22:21:35.879296+00:00",
        "hostname": "web1.example.org",
        "processname": "sshd",
        "processid": 4242,
        "severity": "WARNING",
        "summary": summary,
        "category": "authentication",
        "source": "amqp-test",
        "tags": ["amqp", "mozdef"],
        "details": {"run": run, "sequence": sequence, "sourceipaddress": "10.1.2.3", "username": "jdoe"}
    })
}

/// `channel.basic_publish(exchange, routing_key, body=json.dumps(ev))`: no properties at all.
fn pika_plain() -> BasicProperties {
    BasicProperties::default()
}

/// pika with `BasicProperties(content_type='application/json', delivery_mode=2)`.
fn pika_json_persistent() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
}

/// kombu `Producer(serializer='json').publish(ev, ...)`, what MozDef's loginput sends.
fn kombu() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_headers(FieldTable::default())
        .with_delivery_mode(2)
        .with_priority(0)
}

/// Waits until `q` finds at least `expected` events; returns how many it found.
async fn wait_for_count(server: &ServerProcess, q: &str, expected: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let found = server.count(q).await;
        if found >= expected {
            return found;
        }
        if Instant::now() > deadline {
            server.fail(format!(
                "{q}: {found} of {expected} events after {within:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the series `series` of `/metrics` reaches `at_least`.
async fn wait_for_metric(server: &ServerProcess, series: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let value = server.metric(series).await;
        if value.is_some_and(|value| value >= at_least) {
            return;
        }
        if Instant::now() > deadline {
            server.fail(format!(
                "{series} is {value:?} after 20 s; expected at least {at_least}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn pika_and_kombu_messages_are_stored_as_events() {
    run_test(LIMIT, async {
        let Some(broker) = TestBroker::new("shapes").await else {
            return;
        };
        let server = broker.start_isms(&broker_url(), &[]);
        assert_eq!(
            server.amqp,
            Some((broker.queue.clone(), broker_address())),
            "banner: {:#?}",
            server.banner
        );
        // isms declares the topology itself; wait until it consumes before publishing.
        wait_for_metric(&server, "isms_amqp_connected", 1.0).await;
        let run = "shapes";
        let shapes = [
            ("pika", pika_plain()),
            ("pika-json", pika_json_persistent()),
            ("kombu", kombu()),
        ];
        for (sequence, (name, properties)) in shapes.iter().enumerate() {
            let event = mozdef_event(run, &format!("failed login via {name}"), sequence as u64);
            broker
                .publish(python_json_dumps(&event).as_bytes(), properties.clone())
                .await;
        }
        // An array of two and two JSON lines, in kombu's envelope.
        let array = json!([
            mozdef_event(run, "array one", 10),
            mozdef_event(run, "array two", 11)
        ]);
        broker
            .publish(python_json_dumps(&array).as_bytes(), kombu())
            .await;
        let lines = format!(
            "{}\n{}\n",
            python_json_dumps(&mozdef_event(run, "line one", 20)),
            python_json_dumps(&mozdef_event(run, "line two", 21))
        );
        broker.publish(lines.as_bytes(), pika_plain()).await;
        // Non-ASCII text, escaped as Python's ensure_ascii does.
        broker
            .publish(
                python_json_dumps(&mozdef_event(run, "échec de connexion ✓", 30)).as_bytes(),
                kombu(),
            )
            .await;

        wait_for_count(&server, "details.run:shapes", 8, Duration::from_secs(20)).await;
        assert_eq!(server.count("details.run:shapes").await, 8);
        // The README's search for what came through the queue.
        assert_eq!(
            server
                .count(&format!("origin.endpoint:\"amqp:{}\"", broker.queue))
                .await,
            8
        );
        for (sequence, (name, _)) in shapes.iter().enumerate() {
            let event = server
                .search_one(&format!(
                    "details.run:shapes AND details.sequence:{sequence}"
                ))
                .await;
            assert_eq!(event["summary"], format!("failed login via {name}"));
            assert_eq!(event["category"], "authentication");
            assert_eq!(event["hostname"], "web1.example.org");
            assert_eq!(event["processname"], "sshd");
            assert_eq!(event["processid"], json!(4242));
            assert_eq!(event["severity"], "WARNING");
            assert_eq!(event["source"], "amqp-test");
            assert_eq!(event["tags"], json!(["amqp", "mozdef"]));
            assert_eq!(event["utctimestamp"], "2026-11-21T22:21:35.879296+00:00");
            assert_eq!(event["details"]["sourceipaddress"], "10.1.2.3");
            assert_eq!(event["details"]["username"], "jdoe");
            assert_eq!(
                event["origin"]["endpoint"],
                format!("amqp:{}", broker.queue)
            );
            assert_eq!(event["origin"]["peer"], broker_address());
            assert!(event["origin"].get("key").is_none(), "{}", event["origin"]);
        }
        let accented = server.search_one("details.sequence:30").await;
        assert_eq!(accented["summary"], "échec de connexion ✓");
        for summary in ["array one", "array two", "line one", "line two"] {
            server.search_one(&format!("summary:\"{summary}\"")).await;
        }
        // Everything acknowledged: nothing waits, nothing was dead-lettered.
        wait_for_metric(&server, "isms_amqp_messages_total", 6.0).await;
        assert_eq!(server.metric("isms_amqp_events_total").await, Some(8.0));
        assert_eq!(broker.waiting(&broker.queue).await, 0);
        assert_eq!(broker.waiting(&broker.dead_letter_queue).await, 0);
    });
}

#[test]
fn messages_published_before_isms_starts_are_consumed() {
    run_test(LIMIT, async {
        let Some(broker) = TestBroker::new("before").await else {
            return;
        };
        broker.declare().await;
        for sequence in 0..25 {
            let event = mozdef_event("before", "waiting in the queue", sequence);
            broker
                .publish(python_json_dumps(&event).as_bytes(), kombu())
                .await;
        }
        assert_eq!(broker.waiting(&broker.queue).await, 25);
        let server = broker.start_isms(&broker_url(), &[]);
        wait_for_count(&server, "details.run:before", 25, Duration::from_secs(20)).await;
        let sequences: BTreeSet<u64> = server
            .search("details.run:before")
            .await
            .iter()
            .filter_map(|event| event["details"]["sequence"].as_u64())
            .collect();
        assert_eq!(sequences, (0..25).collect());
        let deadline = Instant::now() + Duration::from_secs(10);
        while broker.waiting(&broker.queue).await > 0 {
            assert!(Instant::now() < deadline, "messages stay unacknowledged");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

#[test]
fn poisoned_messages_go_to_the_dead_letter_queue_with_their_reason() {
    run_test(LIMIT, async {
        let Some(broker) = TestBroker::new("poison").await else {
            return;
        };
        broker.declare().await;
        let good = |sequence: u64| {
            python_json_dumps(&mozdef_event("poison", "good message", sequence)).into_bytes()
        };
        // A body of valid JSON, over the 4096 bytes allowed.
        let oversized = python_json_dumps(&json!({
            "summary": "too big",
            "details": {"padding": "x".repeat(5000)}
        }))
        .into_bytes();
        let bad_time = br#"{"summary": "bad time", "timestamp": "yesterday"}"#.to_vec();
        let publications: Vec<(Vec<u8>, BasicProperties)> = vec![
            (good(1), pika_plain()),
            (b"hello, this is not JSON".to_vec(), pika_plain()),
            (good(2), kombu()),
            (b"42".to_vec(), kombu()),
            (oversized.clone(), pika_json_persistent()),
            (bad_time.clone(), kombu()),
            (good(3), pika_json_persistent()),
        ];
        for (body, properties) in &publications {
            broker.publish(body, properties.clone()).await;
        }
        let server = broker.start_isms(&broker_url(), &[("ISMS_AMQP_MAX_MESSAGE_BYTES", "4096")]);
        wait_for_count(&server, "details.run:poison", 3, Duration::from_secs(20)).await;
        let mut dead = broker.take_dead_letters(4).await;
        dead.sort_by_key(|message| {
            publications
                .iter()
                .position(|(body, _)| *body == message.delivery.data)
                .unwrap_or(usize::MAX)
        });
        let reason = |message: &lapin::message::BasicGetMessage| -> String {
            let headers = message
                .delivery
                .properties
                .headers()
                .as_ref()
                .unwrap_or_else(|| panic!("a dead letter without headers: {message:?}"));
            match headers.inner().get("x-isms-reason") {
                Some(AMQPValue::LongString(text)) => text.to_string(),
                other => panic!("x-isms-reason is {other:?}"),
            }
        };
        assert_eq!(
            dead[0].delivery.data, b"hello, this is not JSON",
            "bodies are unchanged"
        );
        assert_eq!(
            reason(&dead[0]),
            "body is not JSON: expected value at line 1 column 1"
        );
        assert_eq!(dead[0].delivery.properties.content_type(), &None);
        assert_eq!(dead[1].delivery.data, b"42");
        assert_eq!(
            reason(&dead[1]),
            "body is not an event: expected a JSON object, found a number"
        );
        // kombu's properties are kept.
        let kept = &dead[1].delivery.properties;
        assert_eq!(
            kept.content_type().as_ref().map(ShortString::as_str),
            Some("application/json")
        );
        assert_eq!(
            kept.content_encoding().as_ref().map(ShortString::as_str),
            Some("utf-8")
        );
        assert_eq!(kept.delivery_mode(), &Some(2));
        assert_eq!(kept.priority(), &Some(0));
        assert_eq!(dead[2].delivery.data, oversized);
        assert_eq!(
            reason(&dead[2]),
            format!(
                "body is {} bytes, more than amqp.max_message_bytes (4096)",
                oversized.len()
            )
        );
        assert_eq!(dead[2].delivery.properties.delivery_mode(), &Some(2));
        assert_eq!(dead[3].delivery.data, bad_time);
        let bad_time_reason = reason(&dead[3]);
        assert!(
            bad_time_reason.starts_with("body is not a valid event: ")
                && bad_time_reason.contains("timestamp"),
            "{bad_time_reason}"
        );

        let sequences: BTreeSet<u64> = server
            .search("details.run:poison")
            .await
            .iter()
            .filter_map(|event| event["details"]["sequence"].as_u64())
            .collect();
        assert_eq!(sequences, BTreeSet::from([1, 2, 3]));
        assert_eq!(server.count("").await, 3, "no poisoned message is stored");
        for (label, expected) in [
            ("not_json", 1.0),
            ("not_an_object", 1.0),
            ("too_large", 1.0),
            ("invalid_event", 1.0),
        ] {
            wait_for_metric(
                &server,
                &format!("isms_amqp_dead_lettered_total{{reason=\"{label}\"}}"),
                expected,
            )
            .await;
        }
        assert_eq!(broker.waiting(&broker.queue).await, 0, "all acknowledged");
    });
}

#[test]
fn a_server_killed_while_messages_flow_loses_nothing() {
    run_test(Duration::from_secs(120), async {
        let Some(broker) = TestBroker::new("kill").await else {
            return;
        };
        broker.declare().await;
        let total: u64 = 3000;
        let mut server = broker.start_isms(&broker_url(), &[("ISMS_AMQP_PREFETCH", "100")]);
        let broker = Arc::new(broker);
        let publisher = {
            let broker = broker.clone();
            tokio::spawn(async move {
                for sequence in 0..total {
                    let event = mozdef_event("kill", "flowing", sequence);
                    broker
                        .publish(python_json_dumps(&event).as_bytes(), kombu())
                        .await;
                    if sequence % 20 == 19 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        };
        wait_for_count(&server, "details.run:kill", 300, Duration::from_secs(30)).await;
        server.kill9();
        assert!(
            !publisher.is_finished(),
            "the publisher finished before the kill: the test no longer kills while messages flow"
        );
        server.restart();
        publisher.await.expect("the publisher");
        // Every message stored at least once (a few may be stored twice: redelivered after the kill).
        let deadline = Instant::now() + Duration::from_secs(60);
        let sequences = loop {
            let sequences: BTreeSet<u64> = server
                .search("details.run:kill")
                .await
                .iter()
                .filter_map(|event| event["details"]["sequence"].as_u64())
                .collect();
            if sequences.len() as u64 == total {
                break sequences;
            }
            if Instant::now() > deadline {
                let missing: Vec<u64> = (0..total)
                    .filter(|sequence| !sequences.contains(sequence))
                    .take(20)
                    .collect();
                server.fail(format!(
                    "{} of {total} distinct messages stored; missing (first 20): {missing:?}",
                    sequences.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(sequences, (0..total).collect());
        let stored = server.count("details.run:kill").await;
        assert!(
            stored >= total && stored <= total + 100,
            "{stored} stored for {total} sent: duplicates beyond one prefetch window"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while broker.waiting(&broker.queue).await > 0 {
            assert!(Instant::now() < deadline, "messages stay unacknowledged");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// A TCP relay to the broker that the test can refuse, cut and resume: a broker that is down, and a
/// connection that drops.
struct CuttableProxy {
    port: u16,
    relay: Option<tokio::task::JoinHandle<()>>,
}

impl CuttableProxy {
    /// A port where nothing listens yet.
    fn reserve() -> CuttableProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("reserve a port");
        let port = listener.local_addr().expect("reserved address").port();
        drop(listener);
        CuttableProxy { port, relay: None }
    }

    fn url(&self) -> String {
        let mut url: lapin::uri::AMQPUri = broker_url().parse().expect("broker url");
        url.authority.host = "127.0.0.1".to_string();
        url.authority.port = self.port;
        url.to_string()
    }

    /// Starts relaying connections on the port to the broker.
    async fn resume(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("listen on the proxy port again");
        let upstream = broker_address();
        self.relay = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Closes the listener and every relayed connection (aborting the relay drops its JoinSet).
    async fn cut(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.abort();
            let _ = relay.await;
        }
    }
}

#[test]
fn the_consumer_waits_for_a_broker_that_is_down_and_reconnects_after_a_cut() {
    run_test(Duration::from_secs(90), async {
        let Some(broker) = TestBroker::new("proxy").await else {
            return;
        };
        broker.declare().await;
        let mut proxy = CuttableProxy::reserve();
        let server = broker.start_isms(&proxy.url(), &[]);
        assert_eq!(
            server.amqp,
            Some((broker.queue.clone(), format!("127.0.0.1:{}", proxy.port)))
        );
        // Nothing listens: isms runs, serves HTTP and keeps trying.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(server.metric("isms_amqp_connected").await, Some(0.0));
        wait_for_metric(&server, "isms_amqp_reconnects_total", 1.0).await;
        server.assert_still_up().await;
        assert!(
            server.stderr_tail().contains("reconnecting"),
            "{}",
            server.stderr_tail()
        );
        let event =
            |sequence: u64| python_json_dumps(&mozdef_event("proxy", "via proxy", sequence));
        broker.publish(event(1).as_bytes(), kombu()).await;

        // The broker comes up: the waiting message is consumed.
        proxy.resume().await;
        wait_for_count(&server, "details.run:proxy", 1, Duration::from_secs(20)).await;
        assert_eq!(server.metric("isms_amqp_connected").await, Some(1.0));

        // The connection drops and the broker is unreachable for a while.
        proxy.cut().await;
        broker.publish(event(2).as_bytes(), kombu()).await;
        let reconnects = server
            .metric("isms_amqp_reconnects_total")
            .await
            .unwrap_or_default();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(server.metric("isms_amqp_connected").await, Some(0.0));
        assert_eq!(server.count("details.run:proxy").await, 1);
        proxy.resume().await;
        wait_for_count(&server, "details.run:proxy", 2, Duration::from_secs(40)).await;
        wait_for_metric(&server, "isms_amqp_connected", 1.0).await;
        assert!(
            server
                .metric("isms_amqp_reconnects_total")
                .await
                .is_some_and(|now| now > reconnects),
            "the reconnection is counted"
        );
        assert_eq!(server.count("details.run:proxy").await, 2);
        proxy.cut().await;
    });
}

/// `rabbitmqctl` when it is installed and can list connections here (it needs the broker's Erlang
/// cookie: root).
fn rabbitmqctl() -> Option<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let installed = std::env::split_paths(&path)
        .chain([std::path::PathBuf::from("/usr/sbin")])
        .any(|directory| directory.join("rabbitmqctl").is_file());
    if !installed {
        return None;
    }
    let mut command = Command::new("rabbitmqctl");
    command.args(["-q", "list_connections", "pid"]);
    run_bounded(command, Duration::from_secs(30))
        .status
        .success()
        .then_some(())
}

/// The Erlang pid (`<rabbit@host.1.2.3>`, the form `close_connection` takes) of the broker's connection
/// whose client named itself `connection_name`.
fn connection_pid(connection_name: &str) -> Option<String> {
    let mut command = Command::new("rabbitmqctl");
    command.args([
        "-q",
        "--no-table-headers",
        "list_connections",
        "pid",
        "client_properties",
    ]);
    let output = run_bounded(command, Duration::from_secs(30));
    output.assert_success("rabbitmqctl list_connections");
    let property = format!("{{\"connection_name\",\"{connection_name}\"}}");
    output.stdout_text().lines().find_map(|line| {
        let (pid, properties) = line.split_once('\t')?;
        properties
            .contains(&property)
            .then(|| pid.trim().to_string())
    })
}

#[test]
fn the_consumer_reconnects_when_the_broker_closes_its_connection() {
    run_test(LIMIT, async {
        let Some(broker) = TestBroker::new("closed").await else {
            return;
        };
        if required_tool(
            rabbitmqctl(),
            "rabbitmqctl (Debian package rabbitmq-server; run as root)",
        )
        .is_none()
        {
            return;
        }
        let server = broker.start_isms(&broker_url(), &[]);
        wait_for_metric(&server, "isms_amqp_connected", 1.0).await;
        let name = format!("isms consumer of {}", broker.queue);
        let pid = connection_pid(&name)
            .unwrap_or_else(|| server.fail(format!("no broker connection named {name:?}")));
        let mut close = Command::new("rabbitmqctl");
        close.args([
            "-q",
            "close_connection",
            &pid,
            "isms test: closed by the broker",
        ]);
        run_bounded(close, Duration::from_secs(30)).assert_success("rabbitmqctl close_connection");

        let event = python_json_dumps(&mozdef_event("closed", "after the close", 1));
        broker.publish(event.as_bytes(), pika_plain()).await;
        wait_for_count(&server, "details.run:closed", 1, Duration::from_secs(20)).await;
        wait_for_metric(&server, "isms_amqp_reconnects_total", 1.0).await;
        wait_for_metric(&server, "isms_amqp_connected", 1.0).await;
        let again = connection_pid(&name);
        assert!(
            again.is_some_and(|again| again != pid),
            "isms has a new connection"
        );
        // The consumer of the new connection gets the next message too.
        let event = python_json_dumps(&mozdef_event("closed", "on the new connection", 2));
        broker.publish(event.as_bytes(), kombu()).await;
        wait_for_count(&server, "details.run:closed", 2, Duration::from_secs(20)).await;
    });
}

/// The helper writes what Python writes.
#[test]
fn python_json_dumps_matches_python() {
    let value = json!({"summary": "a \"b\"\n", "n": 1, "list": [true, null, 2.5], "é": "✓ 😀"});
    assert_eq!(
        python_json_dumps(&value),
        r#"{"list": [true, null, 2.5], "n": 1, "summary": "a \"b\"\n", "\u00e9": "\u2713 \ud83d\ude00"}"#
    );
}
