//! Configuration of `isms`: one TOML file, every key also settable by an `ISMS_...` environment
//! variable, with errors that say which line, column, key or variable was wrong.
//!
//! Why it is shaped this way:
//!
//! - **One table, [`CONFIG_KEYS`], describes every key** (dotted name, environment variable, type,
//!   default, description). Environment lookup, unknown-key messages, `isms config check` and the
//!   README reference ([`render_reference`]) all read that table, so documentation cannot drift from
//!   behaviour. Tests check the table against the `Config` struct in both directions.
//! - **Layering is done on values, not with a generic layering library.** The file is parsed with
//!   the `toml` crate directly because its errors carry byte spans, which become `line N, column M`;
//!   figment-style merging loses those spans. Environment overrides are applied afterwards by
//!   serializing the loaded `Config` to a TOML table, replacing the leaves named in the table, and
//!   deserializing again, so the override code is generic over every key.
//! - **Unknown keys are found in a pre-pass over the spanned document** rather than relying only on
//!   serde's `deny_unknown_fields` (which is still set, as a backstop): the pre-pass knows the table
//!   path and can list the valid keys of that table at the exact location of the mistake.
//! - `load` only checks shape and types; [`Config::validate`] checks meaning (addresses parse,
//!   limits are positive), so `isms config check` can report both kinds separately.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The whole configuration. Every field has a default, so an empty file (or no file) is valid.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory holding the embedded store and other state.
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub store: StoreConfig,
    pub syslog: SyslogConfig,
    pub files: FilesConfig,
    pub decoders: DecodersConfig,
    pub amqp: AmqpConfig,
    pub detect: DetectConfig,
    pub generators: GeneratorsConfig,
    pub log: LogConfig,
}

/// The HTTP listener and the bounds it puts on every request.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: String,
    pub max_body_bytes: u64,
    pub max_decompressed_bytes: u64,
    pub max_depth: u32,
    pub max_fields: u32,
    pub max_items: u32,
    pub request_timeout_seconds: u64,
}

/// Durability and retention of the event store.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub sync: SyncMode,
    pub retention_days: u32,
    pub retention_max_bytes: u64,
    pub retention_interval_seconds: u64,
    pub writer_max_batch_events: u32,
}

/// The syslog receivers (RFC 3164 and RFC 5424 over UDP, and over TCP with either framing).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogConfig {
    /// Address and port for UDP datagrams; empty turns the UDP receiver off.
    pub udp_listen: String,
    /// Address and port for TCP streams; empty turns the TCP receiver off.
    pub tcp_listen: String,
    /// Longest message accepted, in bytes; longer ones are dropped and counted.
    pub max_message_bytes: u32,
    /// Time zone of RFC 3164 times, which carry none: `UTC`, an offset such as `+02:00`, or a name
    /// such as `Europe/Berlin`.
    pub time_zone: String,
    /// Time zones of particular sources, `SOURCE=ZONE` pairs separated by commas; a source is the
    /// sender's IP address or the host name in the message.
    pub source_time_zones: String,
    /// Address and port for TLS streams (RFC 5425); empty turns the TLS receiver off.
    pub tls_listen: String,
    /// PEM file with the TLS receiver's certificate chain.
    pub tls_certificate: String,
    /// PEM file with the TLS receiver's private key.
    pub tls_key: String,
    /// PEM file of the certificate authorities whose client certificates are required; empty accepts
    /// any client.
    pub tls_client_ca: String,
}

/// Log files tailed into the store.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FilesConfig {
    /// Files or globs (`*` and `?` in the file name) separated by commas; empty tails nothing.
    pub paths: String,
    /// Where to begin files that are there at the very first start.
    pub start_at: FileStart,
    /// How often the files are looked at.
    pub poll_interval_milliseconds: u64,
    /// Longest line kept; longer lines are dropped and counted.
    pub max_line_bytes: u32,
}

/// Decoders written by the operator, in a file of their own.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DecodersConfig {
    /// A TOML file of `[[decoder]]` tables (see [`load_decoder_file`]); empty for none.
    pub file: String,
}

/// One operator decoder as its file writes it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DecoderDefinition {
    /// Its name, recorded on what it decodes.
    pub name: String,
    /// The program (`processname`) it applies to, or `*` for every program.
    pub program: String,
    /// A regex with named captures, each becoming `details.<name>`.
    pub pattern: String,
    /// The category of what it decodes.
    pub category: String,
    /// Static fields: `"details.result" = "failure"`, `tags = "vpn"`, `severity = "WARNING"`.
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecoderFile {
    #[serde(default)]
    decoder: Vec<DecoderDefinition>,
}

/// Reads a file of operator decoders:
///
/// ```toml
/// [[decoder]]
/// name = "vpn-login-failure"
/// program = "openvpn"
/// pattern = '(?P<sourceipaddress>[0-9.]+):(?P<sourceport>\d+) TLS Auth Error: .* user (?P<username>\S+)'
/// category = "authentication"
/// fields = { "details.result" = "failure", tags = "vpn" }
/// ```
///
/// Errors give the file, line and column. The patterns are checked when the decoders are built.
pub fn load_decoder_file(path: &Path) -> Result<Vec<DecoderDefinition>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    let file: DecoderFile = toml::from_str(&text).map_err(|error| {
        let (line, column) = error
            .span()
            .map_or((1, 1), |span| line_column(&text, span.start));
        ConfigError::Toml {
            path: path.to_owned(),
            line,
            column,
            message: error.message().to_owned(),
        }
    })?;
    Ok(file.decoder)
}

/// Where tailing begins in a file that was already there when isms first looked.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FileStart {
    /// Only what is written from now on.
    #[default]
    End,
    /// The whole file.
    Beginning,
}

/// The RabbitMQ (AMQP 0.9.1) consumer: MozDef's `eventtask` queue by default.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AmqpConfig {
    /// `amqp://user:password@host:port/vhost` (or `amqps://`); empty turns the consumer off.
    pub url: String,
    /// Direct, durable exchange the queue is bound to; empty consumes the queue without declaring
    /// an exchange or a binding (senders then publish to the default exchange).
    pub exchange: String,
    /// Durable queue consumed.
    pub queue: String,
    /// Routing key of the binding between the exchange and the queue.
    pub routing_key: String,
    /// Most unacknowledged messages the broker sends at once (`basic.qos`), 1 to 65535.
    pub prefetch: u32,
    /// Largest message body accepted; larger ones go to the dead-letter queue.
    pub max_message_bytes: u32,
    /// Durable queue that receives, unchanged, the messages that cannot become events.
    pub dead_letter_queue: String,
}

/// The detection engine: where its rules and lists come from, and how it treats time.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Whether stored events go through the rules at all.
    pub enabled: Switch,
    /// A directory of YAML rule files, watched; empty for `<data_dir>/rules`.
    pub rules_dir: String,
    /// Whether the rule pack built into the binary runs too.
    pub builtin_rules: Switch,
    /// A directory of list files (`NAME.txt`), watched; empty for `<data_dir>/lists`.
    pub lists_dir: String,
    /// How late (in event time) an event may come and still count in its windows.
    pub allowed_lateness_seconds: u64,
    /// Most times a detection is fed back to the rules as an event.
    pub max_chain_depth: u32,
    /// How often the engine's state is saved (seconds).
    pub snapshot_interval_seconds: u64,
}

/// Alert generators: how their keys are guarded, and whether their changes are pushed.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratorsConfig {
    /// Wrong keys one address may present in a minute before it is refused without a check.
    pub max_key_failures_per_minute: u32,
    /// Whether changes are pushed to the generators registered with a `push_url`.
    pub push: Switch,
    /// Time allowed for one push, connecting included.
    pub push_timeout_seconds: u64,
}

impl Default for GeneratorsConfig {
    fn default() -> Self {
        GeneratorsConfig {
            max_key_failures_per_minute: 20,
            push: Switch::On,
            push_timeout_seconds: 10,
        }
    }
}

/// On or off.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    #[default]
    On,
    Off,
}

impl Switch {
    pub fn is_on(self) -> bool {
        self == Switch::On
    }
}

/// Logging output.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` `EnvFilter` directive string such as `info,isms_server=debug`.
    pub level: String,
    pub format: LogFormat,
}

/// How hard the store works to make a commit durable.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Flush to stable storage on every commit (SQLite `synchronous=FULL`).
    #[default]
    Full,
    /// Flush less often; a power loss can lose the last commits (SQLite `synchronous=NORMAL`).
    Normal,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

const MIB: u64 = 1024 * 1024;

/// The largest `syslog.max_message_bytes`: every TCP connection may hold one message this long.
pub const MAX_SYSLOG_MESSAGE_BYTES: u32 = 1024 * 1024;

/// The largest `amqp.max_message_bytes` (RabbitMQ 4's own default limit): every message of the
/// prefetch window may be held in memory at once.
pub const MAX_AMQP_MESSAGE_BYTES: u32 = 16 * 1024 * 1024;

/// The most unacknowledged messages `amqp.prefetch` may ask for (`basic.qos` carries 16 bits).
pub const MAX_AMQP_PREFETCH: u32 = 65_535;

/// The deepest nesting the JSON parser itself accepts; a larger `http.max_depth` could never apply.
pub const JSON_PARSER_MAX_DEPTH: u32 = 128;

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./isms-data"),
            http: HttpConfig::default(),
            store: StoreConfig::default(),
            syslog: SyslogConfig::default(),
            files: FilesConfig::default(),
            decoders: DecodersConfig::default(),
            amqp: AmqpConfig::default(),
            detect: DetectConfig::default(),
            generators: GeneratorsConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            enabled: Switch::On,
            rules_dir: String::new(),
            builtin_rules: Switch::On,
            lists_dir: String::new(),
            allowed_lateness_seconds: 30,
            max_chain_depth: 5,
            snapshot_interval_seconds: 30,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".to_owned(),
            max_body_bytes: 16 * MIB,
            max_decompressed_bytes: 64 * MIB,
            max_depth: 32,
            max_fields: 1000,
            max_items: 100_000,
            request_timeout_seconds: 60,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            sync: SyncMode::Full,
            retention_days: 90,
            retention_max_bytes: 0,
            retention_interval_seconds: 300,
            writer_max_batch_events: 20_000,
        }
    }
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            udp_listen: "127.0.0.1:5514".to_owned(),
            tcp_listen: "127.0.0.1:5514".to_owned(),
            max_message_bytes: 65_536,
            time_zone: "UTC".to_owned(),
            source_time_zones: String::new(),
            tls_listen: String::new(),
            tls_certificate: String::new(),
            tls_key: String::new(),
            tls_client_ca: String::new(),
        }
    }
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            paths: String::new(),
            start_at: FileStart::End,
            poll_interval_milliseconds: 500,
            max_line_bytes: 65_536,
        }
    }
}

impl Default for AmqpConfig {
    fn default() -> Self {
        AmqpConfig {
            url: String::new(),
            exchange: "eventtask".to_owned(),
            queue: "eventtask".to_owned(),
            routing_key: "eventtask".to_owned(),
            prefetch: 256,
            max_message_bytes: 1024 * 1024,
            dead_letter_queue: "eventtask.dead".to_owned(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// The type of a configuration value, used to parse environment variables and to document keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Free text.
    String,
    /// A filesystem path.
    Path,
    /// An unsigned integer that fits in 64 bits (and in TOML's signed 64-bit integers).
    U64,
    /// An unsigned integer that fits in 32 bits.
    U32,
    /// One of a fixed set of lowercase words.
    Enum(&'static [&'static str]),
}

impl ValueKind {
    /// A short description of what a value of this kind looks like, for messages and docs.
    pub fn describe(&self) -> String {
        match self {
            ValueKind::String => "string".to_owned(),
            ValueKind::Path => "path".to_owned(),
            ValueKind::U64 => format!("integer (0 to {})", i64::MAX),
            ValueKind::U32 => format!("integer (0 to {})", u32::MAX),
            ValueKind::Enum(variants) => format!("one of {}", variants.join(", ")),
        }
    }

    /// [`ValueKind::describe`] with an article, to follow "expected" in messages.
    pub fn expectation(&self) -> String {
        match self {
            ValueKind::Enum(_) => self.describe(),
            ValueKind::U64 | ValueKind::U32 => format!("an {}", self.describe()),
            ValueKind::String | ValueKind::Path => format!("a {}", self.describe()),
        }
    }

    /// Parse the text of an environment variable into the TOML value this kind is stored as.
    /// The error is the expectation that was not met.
    fn parse_env(&self, text: &str) -> Result<toml::Value, String> {
        match self {
            ValueKind::String | ValueKind::Path => Ok(toml::Value::String(text.to_owned())),
            ValueKind::U64 => text
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(toml::Value::Integer)
                .ok_or_else(|| self.expectation()),
            ValueKind::U32 => text
                .trim()
                .parse::<u32>()
                .map(|n| toml::Value::Integer(i64::from(n)))
                .map_err(|_| self.expectation()),
            ValueKind::Enum(variants) => {
                let wanted = text.trim();
                variants
                    .iter()
                    .find(|v| v.eq_ignore_ascii_case(wanted))
                    .map(|v| toml::Value::String((*v).to_owned()))
                    .ok_or_else(|| self.expectation())
            }
        }
    }
}

/// One configuration key: the single source of truth for its names, type, default and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigKey {
    /// Dotted path in the TOML file, e.g. `http.max_body_bytes`.
    pub key: &'static str,
    /// Environment variable overriding it, e.g. `ISMS_HTTP_MAX_BODY_BYTES`.
    pub env: &'static str,
    pub kind: ValueKind,
    /// The default, as it would be written in the environment variable.
    pub default: &'static str,
    pub description: &'static str,
}

/// Every configuration key. Kept in file order: top-level keys, then one block per table.
pub static CONFIG_KEYS: &[ConfigKey] = &[
    ConfigKey {
        key: "data_dir",
        env: "ISMS_DATA_DIR",
        kind: ValueKind::Path,
        default: "./isms-data",
        description: "Directory holding the embedded database and other state; created if missing.",
    },
    ConfigKey {
        key: "http.listen",
        env: "ISMS_HTTP_LISTEN",
        kind: ValueKind::String,
        default: "127.0.0.1:8080",
        description: "Address and port the HTTP server (ingestion, API, console) listens on.",
    },
    ConfigKey {
        key: "http.max_body_bytes",
        env: "ISMS_HTTP_MAX_BODY_BYTES",
        kind: ValueKind::U64,
        default: "16777216",
        description: "Largest request body accepted, as sent (possibly compressed); larger bodies get 413.",
    },
    ConfigKey {
        key: "http.max_decompressed_bytes",
        env: "ISMS_HTTP_MAX_DECOMPRESSED_BYTES",
        kind: ValueKind::U64,
        default: "67108864",
        description: "Largest request body after gzip/deflate decompression; bounds compression bombs. Must be at least `http.max_body_bytes`.",
    },
    ConfigKey {
        key: "http.max_depth",
        env: "ISMS_HTTP_MAX_DEPTH",
        kind: ValueKind::U32,
        default: "32",
        description: "Deepest nesting of objects and arrays allowed in one event (at most 128); deeper events are rejected.",
    },
    ConfigKey {
        key: "http.max_fields",
        env: "ISMS_HTTP_MAX_FIELDS",
        kind: ValueKind::U32,
        default: "1000",
        description: "Most object keys allowed in one event, counted recursively; larger events are rejected.",
    },
    ConfigKey {
        key: "http.max_items",
        env: "ISMS_HTTP_MAX_ITEMS",
        kind: ValueKind::U32,
        default: "100000",
        description: "Most events accepted in one request; larger requests get 413.",
    },
    ConfigKey {
        key: "http.request_timeout_seconds",
        env: "ISMS_HTTP_REQUEST_TIMEOUT_SECONDS",
        kind: ValueKind::U64,
        default: "60",
        description: "Time allowed for one request, from reading the body to the durable commit.",
    },
    ConfigKey {
        key: "store.sync",
        env: "ISMS_STORE_SYNC",
        kind: ValueKind::Enum(&["full", "normal"]),
        default: "full",
        description: "`full` flushes every commit to disk; `normal` is faster but a power loss can lose the last commits.",
    },
    ConfigKey {
        key: "store.retention_days",
        env: "ISMS_STORE_RETENTION_DAYS",
        kind: ValueKind::U32,
        default: "90",
        description: "Events received more than this many days ago are deleted, oldest first; 0 keeps them forever.",
    },
    ConfigKey {
        key: "store.retention_max_bytes",
        env: "ISMS_STORE_RETENTION_MAX_BYTES",
        kind: ValueKind::U64,
        default: "0",
        description: "When the event store grows past this size the oldest events are deleted; 0 means no size bound.",
    },
    ConfigKey {
        key: "store.retention_interval_seconds",
        env: "ISMS_STORE_RETENTION_INTERVAL_SECONDS",
        kind: ValueKind::U64,
        default: "300",
        description: "How often retention runs.",
    },
    ConfigKey {
        key: "store.writer_max_batch_events",
        env: "ISMS_STORE_WRITER_MAX_BATCH_EVENTS",
        kind: ValueKind::U32,
        default: "20000",
        description: "Most events the store writer commits in one transaction.",
    },
    ConfigKey {
        key: "syslog.udp_listen",
        env: "ISMS_SYSLOG_UDP_LISTEN",
        kind: ValueKind::String,
        default: "127.0.0.1:5514",
        description: "Address and port the syslog UDP receiver listens on; empty turns it off.",
    },
    ConfigKey {
        key: "syslog.tcp_listen",
        env: "ISMS_SYSLOG_TCP_LISTEN",
        kind: ValueKind::String,
        default: "127.0.0.1:5514",
        description: "Address and port the syslog TCP receiver listens on (octet-counted or LF/NUL-terminated frames); empty turns it off.",
    },
    ConfigKey {
        key: "syslog.max_message_bytes",
        env: "ISMS_SYSLOG_MAX_MESSAGE_BYTES",
        kind: ValueKind::U32,
        default: "65536",
        description: "Longest syslog message accepted (480 to 1048576); longer ones are dropped, counted and logged, and the stream goes on.",
    },
    ConfigKey {
        key: "syslog.time_zone",
        env: "ISMS_SYSLOG_TIME_ZONE",
        kind: ValueKind::String,
        default: "UTC",
        description: "Time zone of RFC 3164 times, which carry none: `UTC`, an offset such as `+02:00`, or a name such as `Europe/Berlin`.",
    },
    ConfigKey {
        key: "syslog.source_time_zones",
        env: "ISMS_SYSLOG_SOURCE_TIME_ZONES",
        kind: ValueKind::String,
        default: "",
        description: "Time zones of particular sources, overriding `syslog.time_zone`: `SOURCE=ZONE` pairs separated by commas, a source being the sender's IP address or the host name in the message, e.g. `10.0.0.7=Europe/Berlin,fw01=-05:00`.",
    },
    ConfigKey {
        key: "syslog.tls_listen",
        env: "ISMS_SYSLOG_TLS_LISTEN",
        kind: ValueKind::String,
        default: "",
        description: "Address and port the syslog TLS receiver (RFC 5425, octet-counted frames) listens on, e.g. `0.0.0.0:6514`; empty turns it off. Needs `syslog.tls_certificate` and `syslog.tls_key`.",
    },
    ConfigKey {
        key: "syslog.tls_certificate",
        env: "ISMS_SYSLOG_TLS_CERTIFICATE",
        kind: ValueKind::String,
        default: "",
        description: "PEM file holding the TLS receiver's certificate chain, the server's own certificate first.",
    },
    ConfigKey {
        key: "syslog.tls_key",
        env: "ISMS_SYSLOG_TLS_KEY",
        kind: ValueKind::String,
        default: "",
        description: "PEM file holding the TLS receiver's private key (PKCS #8, PKCS #1 or SEC1).",
    },
    ConfigKey {
        key: "syslog.tls_client_ca",
        env: "ISMS_SYSLOG_TLS_CLIENT_CA",
        kind: ValueKind::String,
        default: "",
        description: "PEM file of the certificate authorities that must have signed every client's certificate (mutual TLS); empty accepts clients without certificates.",
    },
    ConfigKey {
        key: "files.paths",
        env: "ISMS_FILES_PATHS",
        kind: ValueKind::String,
        default: "",
        description: "Log files to tail, separated by commas; `*` and `?` may stand in the file name (`/var/log/auth.log,/var/log/suricata/eve*.json`). Each line is a syslog line, a JSON object or an audit record; offsets survive restarts and rotation (rename or copytruncate). Empty tails nothing.",
    },
    ConfigKey {
        key: "files.start_at",
        env: "ISMS_FILES_START_AT",
        kind: ValueKind::Enum(&["end", "beginning"]),
        default: "end",
        description: "Where to begin a file that is already there the first time isms looks: `end` reads only new lines, `beginning` the whole file. Files that appear later are always read from their beginning.",
    },
    ConfigKey {
        key: "files.poll_interval_milliseconds",
        env: "ISMS_FILES_POLL_INTERVAL_MILLISECONDS",
        kind: ValueKind::U64,
        default: "500",
        description: "How often the tailed files are looked at (10 to 60000).",
    },
    ConfigKey {
        key: "files.max_line_bytes",
        env: "ISMS_FILES_MAX_LINE_BYTES",
        kind: ValueKind::U32,
        default: "65536",
        description: "Longest line read from a tailed file (80 to 1048576); longer lines are dropped, counted and logged.",
    },
    ConfigKey {
        key: "decoders.file",
        env: "ISMS_DECODERS_FILE",
        kind: ValueKind::String,
        default: "",
        description: "A TOML file of your own decoders (`[[decoder]]` tables with `name`, `program`, `pattern` with named captures, `category`, `fields`), tried before the built-in ones; empty for none. `isms decode --decoders FILE` tries them on sample lines.",
    },
    ConfigKey {
        key: "amqp.url",
        env: "ISMS_AMQP_URL",
        kind: ValueKind::String,
        default: "",
        description: "RabbitMQ to consume events from, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f` (`amqps://` for TLS); empty turns the consumer off.",
    },
    ConfigKey {
        key: "amqp.exchange",
        env: "ISMS_AMQP_EXCHANGE",
        kind: ValueKind::String,
        default: "eventtask",
        description: "Direct, durable exchange declared and bound to the queue (MozDef's name); empty declares no exchange and no binding.",
    },
    ConfigKey {
        key: "amqp.queue",
        env: "ISMS_AMQP_QUEUE",
        kind: ValueKind::String,
        default: "eventtask",
        description: "Durable queue declared and consumed; each message is one JSON event, an array of them, or JSON lines.",
    },
    ConfigKey {
        key: "amqp.routing_key",
        env: "ISMS_AMQP_ROUTING_KEY",
        kind: ValueKind::String,
        default: "eventtask",
        description: "Routing key binding the queue to the exchange.",
    },
    ConfigKey {
        key: "amqp.prefetch",
        env: "ISMS_AMQP_PREFETCH",
        kind: ValueKind::U32,
        default: "256",
        description: "Most unacknowledged messages held at once (1 to 65535); the waiting ones are stored in one commit, then acknowledged.",
    },
    ConfigKey {
        key: "amqp.max_message_bytes",
        env: "ISMS_AMQP_MAX_MESSAGE_BYTES",
        kind: ValueKind::U32,
        default: "1048576",
        description: "Largest message body accepted (1024 to 16777216); larger ones go to the dead-letter queue.",
    },
    ConfigKey {
        key: "amqp.dead_letter_queue",
        env: "ISMS_AMQP_DEAD_LETTER_QUEUE",
        kind: ValueKind::String,
        default: "eventtask.dead",
        description: "Durable queue that receives, unchanged, each message that cannot be stored, with its reason in the header `x-isms-reason`.",
    },
    ConfigKey {
        key: "detect.enabled",
        env: "ISMS_DETECT_ENABLED",
        kind: ValueKind::Enum(&["on", "off"]),
        default: "on",
        description: "Whether stored events go through the detection rules.",
    },
    ConfigKey {
        key: "detect.rules_dir",
        env: "ISMS_DETECT_RULES_DIR",
        kind: ValueKind::Path,
        default: "",
        description: "Directory of YAML rule files (searched recursively, watched: a change applies without a restart); empty for `<data_dir>/rules`, created at start.",
    },
    ConfigKey {
        key: "detect.builtin_rules",
        env: "ISMS_DETECT_BUILTIN_RULES",
        kind: ValueKind::Enum(&["on", "off"]),
        default: "on",
        description: "Whether the rule pack built into the binary runs (`isms replay --builtin` shows what it raises).",
    },
    ConfigKey {
        key: "detect.lists_dir",
        env: "ISMS_DETECT_LISTS_DIR",
        kind: ValueKind::Path,
        default: "",
        description: "Directory of list files (`NAME.txt`, one address, network or name per line), watched; empty for `<data_dir>/lists`, created at start.",
    },
    ConfigKey {
        key: "detect.allowed_lateness_seconds",
        env: "ISMS_DETECT_ALLOWED_LATENESS_SECONDS",
        kind: ValueKind::U64,
        default: "30",
        description: "How far (in event time) behind the newest event an event may arrive and still count in its windows (0 to 86400); timers wait this long.",
    },
    ConfigKey {
        key: "detect.max_chain_depth",
        env: "ISMS_DETECT_MAX_CHAIN_DEPTH",
        kind: ValueKind::U32,
        default: "5",
        description: "Most times a detection is fed back to the rules as an event (0 to 32); deeper ones are logged and stored but not fed back.",
    },
    ConfigKey {
        key: "detect.snapshot_interval_seconds",
        env: "ISMS_DETECT_SNAPSHOT_INTERVAL_SECONDS",
        kind: ValueKind::U64,
        default: "30",
        description: "How often the engine's state (windows, active entities, first-seen history) is saved to `<data_dir>/detect-state.json` (1 to 3600), besides at shutdown; after a crash the events stored since are processed again.",
    },
    ConfigKey {
        key: "generators.max_key_failures_per_minute",
        env: "ISMS_GENERATORS_MAX_KEY_FAILURES_PER_MINUTE",
        kind: ValueKind::U32,
        default: "20",
        description: "Wrong API keys one address may present in a minute (1 to 100000); past it the address gets 429 until the minute is over, even with a good key, and no key is checked.",
    },
    ConfigKey {
        key: "generators.push",
        env: "ISMS_GENERATORS_PUSH",
        kind: ValueKind::Enum(&["on", "off"]),
        default: "on",
        description: "Whether the changes of generators registered with a `push_url` are pushed there (signed), besides being pulled; `off` makes the collector open no connection to generators.",
    },
    ConfigKey {
        key: "generators.push_timeout_seconds",
        env: "ISMS_GENERATORS_PUSH_TIMEOUT_SECONDS",
        kind: ValueKind::U64,
        default: "10",
        description: "Time allowed for one push to a generator, connecting included (1 to 120); a push that fails is tried again after 1, 2, 4 ... 60 seconds.",
    },
    ConfigKey {
        key: "log.level",
        env: "ISMS_LOG_LEVEL",
        kind: ValueKind::String,
        default: "info",
        description: "Log filter in `tracing` EnvFilter syntax, e.g. `info` or `warn,isms_server=debug`.",
    },
    ConfigKey {
        key: "log.format",
        env: "ISMS_LOG_FORMAT",
        kind: ValueKind::Enum(&["text", "json"]),
        default: "text",
        description: "`text` for people, `json` for log shippers (one JSON object per line).",
    },
];

/// Look a key up in [`CONFIG_KEYS`] by its dotted name.
pub fn config_key(key: &str) -> Option<&'static ConfigKey> {
    CONFIG_KEYS.iter().find(|k| k.key == key)
}

/// Everything that can go wrong loading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (including: it does not exist).
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    /// `line` and `column` are 1-based; `column` counts characters.
    #[error("{}, line {line}, column {column}: {message}", path.display())]
    Toml {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// An `ISMS_...` environment variable holds a value of the wrong type.
    #[error("environment variable {variable}={value:?} is invalid: expected {expected}")]
    Environment {
        variable: String,
        value: String,
        expected: String,
    },
    /// A value has the right type but a meaning that cannot work.
    #[error("invalid value for {key}: {reason}")]
    Invalid { key: String, reason: String },
}

impl Config {
    /// Load the configuration: defaults, overridden by `file` (if given), overridden by the
    /// environment. `environment` maps a variable name to its value; pass
    /// `&|name| std::env::var(name).ok()` for the process environment.
    ///
    /// This checks shape and types only; call [`Config::validate`] to check meaning.
    pub fn load(
        file: Option<&Path>,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let config = match file {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        config.with_environment(environment)
    }

    /// Parse a configuration file; missing keys take their defaults.
    fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => {
                let valid = err.utf8_error().valid_up_to();
                let prefix = String::from_utf8_lossy(&err.as_bytes()[..valid]);
                let (line, column) = line_column(&prefix, valid);
                return Err(ConfigError::Toml {
                    path: path.to_owned(),
                    line,
                    column,
                    message: "file is not valid UTF-8".to_owned(),
                });
            }
        };
        Self::from_toml_str(&text, path)
    }

    /// Parse configuration text; `path` is only used in error messages.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let toml_error = |span: Option<Range<usize>>, message: String| {
            let (line, column) = line_column(text, span.map_or(0, |s| s.start));
            ConfigError::Toml {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };

        let document = toml::de::DeTable::parse(text)
            .map_err(|err| toml_error(err.span(), err.message().trim_end().to_owned()))?;

        let mut leaves = Vec::new();
        check_table(document.get_ref(), "", &mut leaves)
            .map_err(|(span, message)| toml_error(Some(span), message))?;

        toml::from_str::<Config>(text).map_err(|err| {
            let span = err.span();
            // Name the key whose value is wrong: serde's message only says what type it wanted.
            let key = span.as_ref().and_then(|span| {
                leaves
                    .iter()
                    .filter(|(_, value)| value.start <= span.start && span.end <= value.end)
                    .min_by_key(|(_, value)| value.end - value.start)
                    .map(|(key, _)| key.clone())
            });
            let message = err.message().trim_end();
            let message = match key {
                Some(key) => format!("{key}: {message}"),
                None => message.to_owned(),
            };
            toml_error(span, message)
        })
    }

    /// Apply every `ISMS_...` variable named in [`CONFIG_KEYS`] that `environment` defines.
    fn with_environment(
        self,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut table = None;
        for key in CONFIG_KEYS {
            let Some(text) = environment(key.env) else {
                continue;
            };
            let value = key
                .kind
                .parse_env(&text)
                .map_err(|expected| ConfigError::Environment {
                    variable: key.env.to_owned(),
                    value: text.clone(),
                    expected,
                })?;
            let table = match &mut table {
                Some(table) => table,
                None => table.insert(to_table(&self)),
            };
            set_leaf(table, key.key, value);
        }
        match table {
            None => Ok(self),
            Some(table) => {
                table
                    .try_into::<Config>()
                    .map_err(|err| ConfigError::Invalid {
                        // parse_env already checked every type, so this is not expected; keep
                        // serde's words rather than panicking.
                        key: "environment".to_owned(),
                        reason: format!(
                            "ISMS_* overrides do not fit the configuration: {}",
                            err.message()
                        ),
                    })
            }
        }
    }

    /// Check that the values make sense together. Returns the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(key: &str, reason: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError::Invalid {
                key: key.to_owned(),
                reason: reason.into(),
            })
        }

        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty");
        }
        if let Err(err) = self.http.listen.parse::<SocketAddr>() {
            return invalid(
                "http.listen",
                format!(
                    "{:?} is not an address and port such as 127.0.0.1:8080 ({err})",
                    self.http.listen
                ),
            );
        }
        let positive: [(&str, u64); 8] = [
            ("http.max_body_bytes", self.http.max_body_bytes),
            (
                "http.max_decompressed_bytes",
                self.http.max_decompressed_bytes,
            ),
            ("http.max_depth", u64::from(self.http.max_depth)),
            ("http.max_fields", u64::from(self.http.max_fields)),
            ("http.max_items", u64::from(self.http.max_items)),
            (
                "http.request_timeout_seconds",
                self.http.request_timeout_seconds,
            ),
            (
                "store.retention_interval_seconds",
                self.store.retention_interval_seconds,
            ),
            (
                "store.writer_max_batch_events",
                u64::from(self.store.writer_max_batch_events),
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return invalid(key, "must be greater than 0");
            }
        }
        if self.http.max_decompressed_bytes < self.http.max_body_bytes {
            return invalid(
                "http.max_decompressed_bytes",
                format!(
                    "{} is less than http.max_body_bytes ({}); an uncompressed body counts against both",
                    self.http.max_decompressed_bytes, self.http.max_body_bytes
                ),
            );
        }
        if self.http.max_depth > JSON_PARSER_MAX_DEPTH {
            return invalid(
                "http.max_depth",
                format!(
                    "{} is more than {JSON_PARSER_MAX_DEPTH}, the JSON parser's own nesting limit",
                    self.http.max_depth
                ),
            );
        }
        for (key, listen) in [
            ("syslog.udp_listen", &self.syslog.udp_listen),
            ("syslog.tcp_listen", &self.syslog.tcp_listen),
            ("syslog.tls_listen", &self.syslog.tls_listen),
        ] {
            if !listen.is_empty()
                && let Err(err) = listen.parse::<SocketAddr>()
            {
                return invalid(
                    key,
                    format!(
                        "{listen:?} is not an address and port such as 127.0.0.1:5514, or empty to turn the receiver off ({err})"
                    ),
                );
            }
        }
        if !(480..=MAX_SYSLOG_MESSAGE_BYTES).contains(&self.syslog.max_message_bytes) {
            return invalid(
                "syslog.max_message_bytes",
                format!(
                    "{} is outside 480 (what every syslog receiver must accept, RFC 5424) to \
                     {MAX_SYSLOG_MESSAGE_BYTES} (each TCP connection may buffer one message)",
                    self.syslog.max_message_bytes
                ),
            );
        }
        if let Err(reason) = parse_time_zone(&self.syslog.time_zone) {
            return invalid("syslog.time_zone", reason);
        }
        if let Err(reason) = parse_source_time_zones(&self.syslog.source_time_zones) {
            return invalid("syslog.source_time_zones", reason);
        }
        if !self.syslog.tls_listen.is_empty() {
            for (key, path) in [
                ("syslog.tls_certificate", &self.syslog.tls_certificate),
                ("syslog.tls_key", &self.syslog.tls_key),
            ] {
                if path.is_empty() {
                    return invalid(key, "must name a PEM file when syslog.tls_listen is set");
                }
            }
        }
        if let Err(reason) = parse_file_patterns(&self.files.paths) {
            return invalid("files.paths", reason);
        }
        if !(10..=60_000).contains(&self.files.poll_interval_milliseconds) {
            return invalid(
                "files.poll_interval_milliseconds",
                format!(
                    "{} is outside 10 to 60000",
                    self.files.poll_interval_milliseconds
                ),
            );
        }
        if self.detect.allowed_lateness_seconds > 86_400 {
            return invalid(
                "detect.allowed_lateness_seconds",
                format!(
                    "{} is more than a day (86400)",
                    self.detect.allowed_lateness_seconds
                ),
            );
        }
        if !(1..=3600).contains(&self.detect.snapshot_interval_seconds) {
            return invalid(
                "detect.snapshot_interval_seconds",
                format!(
                    "{} is not between 1 and 3600",
                    self.detect.snapshot_interval_seconds
                ),
            );
        }
        if !(1..=100_000).contains(&self.generators.max_key_failures_per_minute) {
            return invalid(
                "generators.max_key_failures_per_minute",
                format!(
                    "{} is not between 1 and 100000",
                    self.generators.max_key_failures_per_minute
                ),
            );
        }
        if !(1..=120).contains(&self.generators.push_timeout_seconds) {
            return invalid(
                "generators.push_timeout_seconds",
                format!(
                    "{} is not between 1 and 120",
                    self.generators.push_timeout_seconds
                ),
            );
        }
        if self.detect.max_chain_depth > 32 {
            return invalid(
                "detect.max_chain_depth",
                format!("{} is more than 32", self.detect.max_chain_depth),
            );
        }
        if !(80..=MAX_SYSLOG_MESSAGE_BYTES).contains(&self.files.max_line_bytes) {
            return invalid(
                "files.max_line_bytes",
                format!(
                    "{} is outside 80 to {MAX_SYSLOG_MESSAGE_BYTES}",
                    self.files.max_line_bytes
                ),
            );
        }
        if !self.decoders.file.is_empty() {
            load_decoder_file(Path::new(&self.decoders.file)).map_err(|error| {
                ConfigError::Invalid {
                    key: "decoders.file".to_owned(),
                    reason: error.to_string(),
                }
            })?;
        }
        self.amqp.validate()?;
        let level = self.log.level.trim();
        if level.is_empty() {
            return invalid("log.level", "must not be empty (try \"info\")");
        }
        if level
            .split(',')
            .any(|directive| directive.trim().is_empty())
        {
            return invalid(
                "log.level",
                format!("{:?} has an empty directive between commas", self.log.level),
            );
        }
        Ok(())
    }
}

/// A time zone as the configuration writes it: `UTC`, an offset (see [`parse_fixed_time_zone`]) or
/// a name from the system's time zone database (`/usr/share/zoneinfo`), such as `Europe/Berlin`.
pub fn parse_time_zone(text: &str) -> Result<jiff::tz::TimeZone, String> {
    if let Some(seconds) = parse_fixed_time_zone(text) {
        let offset = jiff::tz::Offset::from_seconds(seconds).map_err(|error| error.to_string())?;
        return Ok(jiff::tz::TimeZone::fixed(offset));
    }
    let name = text.trim();
    if name.is_empty() || name.starts_with(['+', '-']) {
        return Err(format!(
            "{text:?} is neither UTC, an offset such as +02:00 or -05:30, nor a time zone name"
        ));
    }
    jiff::tz::TimeZone::get(name).map_err(|error| {
        format!(
            "{text:?} is neither UTC, an offset such as +02:00 or -05:30, nor a time zone name \
             this system knows ({error})"
        )
    })
}

/// `SOURCE=ZONE` pairs separated by commas (see `syslog.source_time_zones`); an empty text is no
/// pairs. Sources are compared case-insensitively, so they are returned lowercased.
pub fn parse_source_time_zones(text: &str) -> Result<Vec<(String, jiff::tz::TimeZone)>, String> {
    let mut pairs = Vec::new();
    for (index, pair) in text.split(',').enumerate() {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((source, zone)) = pair.split_once('=') else {
            return Err(format!(
                "pair {} ({pair:?}) is not SOURCE=ZONE, e.g. 10.0.0.7=Europe/Berlin",
                index + 1
            ));
        };
        let source = source.trim();
        if source.is_empty() {
            return Err(format!("pair {} ({pair:?}) names no source", index + 1));
        }
        let zone =
            parse_time_zone(zone).map_err(|reason| format!("pair {}: {reason}", index + 1))?;
        pairs.push((source.to_ascii_lowercase(), zone));
    }
    Ok(pairs)
}

/// The patterns of `files.paths`: absolute paths whose file name may hold `*` and `?` (directories
/// may not: a pattern names one directory to look in).
pub fn parse_file_patterns(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut patterns = Vec::new();
    for (index, pattern) in text.split(',').enumerate() {
        let pattern = pattern.trim();
        if pattern.is_empty() {
            continue;
        }
        let path = PathBuf::from(pattern);
        let number = index + 1;
        if !path.is_absolute() {
            return Err(format!(
                "path {number} ({pattern:?}) is not absolute; write it from / on"
            ));
        }
        let directory = path
            .parent()
            .map(|parent| parent.to_string_lossy().into_owned());
        if directory.is_some_and(|directory| directory.contains(['*', '?'])) {
            return Err(format!(
                "path {number} ({pattern:?}) has a wildcard in a directory; only the file name may have one"
            ));
        }
        if path.file_name().is_none() {
            return Err(format!("path {number} ({pattern:?}) names no file"));
        }
        patterns.push(path);
    }
    Ok(patterns)
}

impl AmqpConfig {
    /// Checks the consumer's settings (names are checked even while `url` is empty, so turning the
    /// consumer on later cannot reveal an old mistake).
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| {
            Err(ConfigError::Invalid {
                key: key.to_owned(),
                reason,
            })
        };
        let url = self.url.trim();
        if !url.is_empty() {
            let scheme_ok = ["amqp://", "amqps://"].iter().any(|scheme| {
                url.len() > scheme.len() && url[..scheme.len()].eq_ignore_ascii_case(scheme)
            });
            if !scheme_ok || url.chars().any(char::is_whitespace) {
                // Never echo the URL: it usually holds a password.
                return invalid(
                    "amqp.url",
                    "is not an AMQP URL such as amqp://guest:guest@127.0.0.1:5672/%2f \
                     (amqp:// or amqps://, no spaces), or empty to turn the consumer off"
                        .to_owned(),
                );
            }
        }
        // AMQP names are short strings (at most 255 bytes); `amq.` names are the broker's own.
        let names = [
            ("amqp.exchange", &self.exchange, true),
            ("amqp.queue", &self.queue, false),
            ("amqp.routing_key", &self.routing_key, true),
            ("amqp.dead_letter_queue", &self.dead_letter_queue, false),
        ];
        for (key, name, may_be_empty) in names {
            if name.is_empty() && !may_be_empty {
                return invalid(key, "must not be empty".to_owned());
            }
            if name.len() > 255 {
                return invalid(
                    key,
                    format!(
                        "is {} bytes long; AMQP names are at most 255 bytes",
                        name.len()
                    ),
                );
            }
            if key != "amqp.routing_key" && name.starts_with("amq.") {
                return invalid(
                    key,
                    format!("{name:?} starts with \"amq.\", which RabbitMQ reserves for itself"),
                );
            }
        }
        if self.dead_letter_queue == self.queue {
            return invalid(
                "amqp.dead_letter_queue",
                format!(
                    "{:?} is also amqp.queue: dead-lettered messages would come straight back",
                    self.dead_letter_queue
                ),
            );
        }
        if !(1..=MAX_AMQP_PREFETCH).contains(&self.prefetch) {
            return invalid(
                "amqp.prefetch",
                format!(
                    "{} is outside 1 to {MAX_AMQP_PREFETCH} (basic.qos carries 16 bits)",
                    self.prefetch
                ),
            );
        }
        if !(1024..=MAX_AMQP_MESSAGE_BYTES).contains(&self.max_message_bytes) {
            return invalid(
                "amqp.max_message_bytes",
                format!(
                    "{} is outside 1024 to {MAX_AMQP_MESSAGE_BYTES} (every message of the prefetch \
                     window may be held in memory at once)",
                    self.max_message_bytes
                ),
            );
        }
        Ok(())
    }
}

/// `UTC`/`Z` or an offset `+HH:MM` / `-HH:MM` (also `+HHMM`, `+HH`), as seconds east of UTC.
pub fn parse_fixed_time_zone(text: &str) -> Option<i32> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("utc") || text.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = if digits.len() == 4 {
        digits[2..].parse().ok()?
    } else {
        0
    };
    (hours <= 23 && minutes <= 59).then_some(sign * (hours * 3600 + minutes * 60))
}

/// Walk the spanned document, rejecting keys that are not in [`CONFIG_KEYS`] and recording the
/// value span of every known leaf (to name the key in later type errors).
fn check_table(
    table: &toml::de::DeTable<'_>,
    prefix: &str,
    leaves: &mut Vec<(String, Range<usize>)>,
) -> Result<(), (Range<usize>, String)> {
    for (name, value) in table {
        let dotted = if prefix.is_empty() {
            name.get_ref().to_string()
        } else {
            format!("{prefix}.{}", name.get_ref())
        };
        if let Some(key) = config_key(&dotted) {
            // serde would read a table as an externally tagged enum and blame its inner key;
            // no key takes a table or an array, so say so here, at the value.
            if let kind @ ("table" | "array") = value.get_ref().type_str() {
                return Err((
                    value.span(),
                    format!(
                        "{dotted}: expected {}, found {kind}",
                        key.kind.expectation()
                    ),
                ));
            }
            leaves.push((dotted, value.span()));
            continue;
        }
        if !children(&dotted).is_empty() {
            match value.get_ref() {
                toml::de::DeValue::Table(inner) => check_table(inner, &dotted, leaves)?,
                other => {
                    return Err((
                        value.span(),
                        format!("{dotted}: expected a table, found {}", other.type_str()),
                    ));
                }
            }
            continue;
        }
        let place = if prefix.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("in table [{prefix}]")
        };
        return Err((
            name.span(),
            format!(
                "unknown key `{}` {place}; valid keys are: {}",
                name.get_ref(),
                children(prefix).join(", ")
            ),
        ));
    }
    Ok(())
}

/// The names directly below `prefix` ("" for the top level), in [`CONFIG_KEYS`] order.
fn children(prefix: &str) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for key in CONFIG_KEYS {
        let rest = if prefix.is_empty() {
            Some(key.key)
        } else {
            key.key
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('.'))
        };
        if let Some(rest) = rest {
            let first = rest.split('.').next().unwrap_or(rest);
            if !names.contains(&first) {
                names.push(first);
            }
        }
    }
    names
}

fn to_table(config: &Config) -> toml::Table {
    // Serializing a struct of strings, integers and unit enums to a table cannot fail.
    toml::Table::try_from(config).expect("config serializes to a toml table")
}

/// Set the leaf at dotted `key`, creating intermediate tables as needed.
fn set_leaf(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts = key.split('.').peekable();
    let mut table = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            table.insert(part.to_owned(), value);
            return;
        }
        let entry = table
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        table = entry.as_table_mut().expect("just made a table");
    }
}

/// 1-based line and character column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// A Markdown table of every configuration key, its environment variable, type, default and
/// description, for the README and `isms config keys`.
pub fn render_reference() -> String {
    let mut out = String::new();
    out.push_str("| Key | Environment variable | Type | Default | Description |\n");
    out.push_str("|-----|----------------------|------|---------|-------------|\n");
    for key in CONFIG_KEYS {
        let default = if key.default.is_empty() {
            "(empty)".to_owned()
        } else {
            format!("`{}`", key.default)
        };
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | {} | {} |",
            key.key,
            key.env,
            key.kind.describe(),
            default,
            key.description.replace('|', "\\|"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::Write as _;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn env_from(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn write_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let file = write_file(text);
        Config::load(Some(file.path()), &no_env)
    }

    fn toml_err(result: Result<Config, ConfigError>) -> (usize, usize, String) {
        match result {
            Err(ConfigError::Toml {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected a toml error, got {other:?}"),
        }
    }

    /// Every leaf of a serialized config as dotted key -> value rendered like an env variable.
    fn leaves(config: &Config) -> BTreeMap<String, String> {
        fn walk(table: &toml::Table, prefix: &str, out: &mut BTreeMap<String, String>) {
            for (name, value) in table {
                let dotted = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                match value {
                    toml::Value::Table(inner) => walk(inner, &dotted, out),
                    toml::Value::String(s) => {
                        out.insert(dotted, s.clone());
                    }
                    toml::Value::Integer(i) => {
                        out.insert(dotted, i.to_string());
                    }
                    other => panic!("unexpected value type at {dotted}: {other:?}"),
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&to_table(config), "", &mut out);
        out
    }

    #[test]
    fn defaults_without_file_or_env() {
        let config = Config::load(None, &no_env).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.data_dir, PathBuf::from("./isms-data"));
        assert_eq!(config.http.listen, "127.0.0.1:8080");
        assert_eq!(config.http.max_body_bytes, 16 * 1024 * 1024);
        assert_eq!(config.http.max_decompressed_bytes, 64 * 1024 * 1024);
        assert_eq!(config.http.max_depth, 32);
        assert_eq!(config.http.max_fields, 1000);
        assert_eq!(config.http.max_items, 100_000);
        assert_eq!(config.http.request_timeout_seconds, 60);
        assert_eq!(config.store.sync, SyncMode::Full);
        assert_eq!(config.store.retention_days, 90);
        assert_eq!(config.store.retention_max_bytes, 0);
        assert_eq!(config.store.retention_interval_seconds, 300);
        assert_eq!(config.store.writer_max_batch_events, 20_000);
        assert_eq!(config.log.level, "info");
        assert_eq!(config.log.format, LogFormat::Text);
        config.validate().unwrap();
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(load_text("").unwrap(), Config::default());
    }

    #[test]
    fn file_overrides_defaults() {
        let config = load_text(
            r#"
data_dir = "/var/lib/isms"

[http]
listen = "0.0.0.0:9000"
max_items = 5

[store]
sync = "normal"
retention_days = 0

[log]
format = "json"
"#,
        )
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/isms"));
        assert_eq!(config.http.listen, "0.0.0.0:9000");
        assert_eq!(config.http.max_items, 5);
        assert_eq!(config.http.max_depth, 32, "unset keys keep defaults");
        assert_eq!(config.store.sync, SyncMode::Normal);
        assert_eq!(config.store.retention_days, 0);
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.log.level, "info");
        config.validate().unwrap();
    }

    #[test]
    fn dotted_keys_at_top_level_work() {
        let config = load_text("http.max_depth = 7\n").unwrap();
        assert_eq!(config.http.max_depth, 7);
    }

    #[test]
    fn env_overrides_file() {
        let file = write_file("[http]\nmax_items = 5\nmax_depth = 9\n[log]\nformat = \"json\"\n");
        let env = env_from(&[
            ("ISMS_HTTP_MAX_ITEMS", "77"),
            ("ISMS_LOG_FORMAT", "TEXT"),
            ("ISMS_STORE_SYNC", "Normal"),
            ("ISMS_DATA_DIR", "/srv/isms"),
        ]);
        let config = Config::load(Some(file.path()), &env).unwrap();
        assert_eq!(config.http.max_items, 77);
        assert_eq!(
            config.http.max_depth, 9,
            "file value kept when env is unset"
        );
        assert_eq!(config.log.format, LogFormat::Text);
        assert_eq!(config.store.sync, SyncMode::Normal);
        assert_eq!(config.data_dir, PathBuf::from("/srv/isms"));
    }

    #[test]
    fn missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.toml");
        let err = Config::load(Some(&path), &no_env).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("nope.toml"), "{text}");
        assert!(text.starts_with("cannot read config file"), "{text}");
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let (line, column, message) = toml_err(load_text(
            "[http]\nlisten = \"127.0.0.1:1\"\nmax_items = = 3\n",
        ));
        assert_eq!((line, column), (3, 13), "{message}");
        assert!(!message.is_empty());
    }

    #[test]
    fn unterminated_string_has_line_and_column() {
        let (line, column, message) = toml_err(load_text("\n\nlog.level = \"info\n"));
        assert_eq!(line, 3, "{message}");
        assert!(column >= 13, "column {column}: {message}");
    }

    #[test]
    fn duplicate_key_has_line_and_column() {
        let (line, column, message) = toml_err(load_text("[log]\nlevel = \"a\"\nlevel = \"b\"\n"));
        assert_eq!((line, column), (3, 1), "{message}");
    }

    #[test]
    fn unknown_key_in_table_lists_valid_keys() {
        let (line, column, message) =
            toml_err(load_text("[http]\nlisten = \"x\"\n  max_bodyy = 3\n"));
        assert_eq!((line, column), (3, 3), "{message}");
        assert!(
            message.contains("unknown key `max_bodyy` in table [http]"),
            "{message}"
        );
        for key in [
            "listen",
            "max_body_bytes",
            "max_decompressed_bytes",
            "max_depth",
            "max_fields",
            "max_items",
            "request_timeout_seconds",
        ] {
            assert!(message.contains(key), "{key} missing from: {message}");
        }
    }

    #[test]
    fn unknown_top_level_key_and_table() {
        let (line, column, message) = toml_err(load_text("data_dir = \"x\"\ndatadir = \"y\"\n"));
        assert_eq!((line, column), (2, 1), "{message}");
        assert!(message.contains("at the top level"), "{message}");
        assert!(
            message.contains(
                "data_dir, http, store, syslog, files, decoders, amqp, detect, generators, log"
            ),
            "{message}"
        );

        let (line, column, message) = toml_err(load_text("\n[storage]\nsync = \"full\"\n"));
        assert_eq!((line, column), (2, 2), "{message}");
        assert!(message.contains("unknown key `storage`"), "{message}");
    }

    #[test]
    fn table_where_a_value_was_expected_and_vice_versa() {
        let (line, column, message) = toml_err(load_text("http = 3\n"));
        assert_eq!((line, column), (1, 8), "{message}");
        assert!(message.contains("http: expected a table"), "{message}");

        let (line, column, message) =
            toml_err(load_text("[log]\nlevel = \"x\"\n[log.format]\nx = 1\n"));
        assert_eq!((line, column), (3, 1), "{message}");
        assert!(
            message.contains("log.format: expected one of text, json, found table"),
            "{message}"
        );

        let (line, column, message) = toml_err(load_text("[http]\nmax_items = [1]\n"));
        assert_eq!((line, column), (2, 13), "{message}");
        assert!(
            message.contains("http.max_items: expected an integer"),
            "{message}"
        );
    }

    #[test]
    fn wrong_type_has_line_column_and_key() {
        let (line, column, message) =
            toml_err(load_text("[http]\nlisten = \"x\"\nmax_depth = \"deep\"\n"));
        assert_eq!((line, column), (3, 13), "{message}");
        assert!(message.starts_with("http.max_depth: "), "{message}");
        assert!(message.contains("u32"), "{message}");
    }

    #[test]
    fn out_of_range_and_bad_enum_have_line_and_column() {
        let (line, column, message) = toml_err(load_text("[http]\nmax_depth = -1\n"));
        assert_eq!((line, column), (2, 13), "{message}");
        assert!(message.starts_with("http.max_depth"), "{message}");

        let (line, column, message) = toml_err(load_text("[store]\n\nsync = \"fast\"\n"));
        assert_eq!((line, column), (3, 8), "{message}");
        assert!(message.contains("full"), "{message}");
        assert!(message.contains("normal"), "{message}");
    }

    #[test]
    fn invalid_utf8_file_has_line_and_column() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"[log]\nlevel = \"in\xfffo\"\n").unwrap();
        let (line, column, message) = toml_err(Config::load(Some(file.path()), &no_env));
        assert_eq!((line, column), (2, 12), "{message}");
        assert!(message.contains("UTF-8"), "{message}");
    }

    #[test]
    fn toml_error_display_names_path_line_and_column() {
        let file = write_file("[http]\nmax_depth = \"x\"\n");
        let err = Config::load(Some(file.path()), &no_env).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&file.path().display().to_string()), "{text}");
        assert!(text.contains("line 2, column 13"), "{text}");
    }

    #[test]
    fn bad_env_value_names_variable_and_type() {
        let cases = [
            ("ISMS_HTTP_MAX_DEPTH", "deep", "integer"),
            ("ISMS_HTTP_MAX_DEPTH", "4294967296", "integer"),
            ("ISMS_HTTP_MAX_BODY_BYTES", "-1", "integer"),
            (
                "ISMS_HTTP_MAX_BODY_BYTES",
                "18446744073709551615",
                "integer",
            ),
            ("ISMS_STORE_SYNC", "fast", "one of full, normal"),
            ("ISMS_LOG_FORMAT", "", "one of text, json"),
        ];
        for (variable, value, expected) in cases {
            let env = env_from(&[(variable, value)]);
            match Config::load(None, &env) {
                Err(ConfigError::Environment {
                    variable: v,
                    value: got,
                    expected: e,
                }) => {
                    assert_eq!(v, variable);
                    assert_eq!(got, value);
                    assert!(e.contains(expected), "{e}");
                }
                other => panic!("{variable}={value}: expected env error, got {other:?}"),
            }
        }
        let err = Config::load(None, &env_from(&[("ISMS_HTTP_MAX_ITEMS", "lots")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "environment variable ISMS_HTTP_MAX_ITEMS=\"lots\" is invalid: expected an integer (0 to {})",
                u32::MAX
            )
        );
    }

    #[test]
    fn env_names_follow_the_rule() {
        for key in CONFIG_KEYS {
            let expected = format!("ISMS_{}", key.key.to_uppercase().replace('.', "_"));
            assert_eq!(key.env, expected, "{}", key.key);
        }
        let names: BTreeSet<_> = CONFIG_KEYS.iter().map(|k| k.key).collect();
        assert_eq!(
            names.len(),
            CONFIG_KEYS.len(),
            "duplicate keys in CONFIG_KEYS"
        );
    }

    #[test]
    fn config_keys_cover_every_field_and_defaults_match() {
        let default_leaves = leaves(&Config::default());
        let table_keys: BTreeSet<String> = CONFIG_KEYS.iter().map(|k| k.key.to_owned()).collect();
        let struct_keys: BTreeSet<String> = default_leaves.keys().cloned().collect();
        assert_eq!(
            struct_keys, table_keys,
            "CONFIG_KEYS and Config disagree on the set of keys"
        );
        for key in CONFIG_KEYS {
            assert_eq!(
                default_leaves[key.key], key.default,
                "documented default of {} is wrong",
                key.key
            );
        }
    }

    #[test]
    fn every_key_round_trips_through_env() {
        for key in CONFIG_KEYS {
            // The documented default, given explicitly, yields the default config.
            let env = env_from(&[(key.env, key.default)]);
            let config = Config::load(None, &env).unwrap();
            assert_eq!(config, Config::default(), "{}", key.env);

            // A non-default value lands on exactly that key.
            let sample = match key.kind {
                ValueKind::String => "127.0.0.2:1".to_owned(),
                ValueKind::Path => "/tmp/isms-elsewhere".to_owned(),
                ValueKind::U64 | ValueKind::U32 => "7".to_owned(),
                ValueKind::Enum(variants) => {
                    let other = variants.iter().find(|v| **v != key.default).unwrap();
                    other.to_uppercase()
                }
            };
            let env = env_from(&[(key.env, &sample)]);
            let config = Config::load(None, &env).unwrap();
            let mut expected = leaves(&Config::default());
            expected.insert(key.key.to_owned(), sample.to_lowercase());
            assert_eq!(leaves(&config), expected, "{}", key.env);
        }
    }

    #[test]
    fn every_key_can_be_set_in_the_file() {
        for key in CONFIG_KEYS {
            let value = match key.kind {
                ValueKind::U64 | ValueKind::U32 => key.default.to_owned(),
                _ => format!("{:?}", key.default),
            };
            let config = load_text(&format!("{} = {value}\n", key.key)).unwrap();
            assert_eq!(config, Config::default(), "{}", key.key);
        }
    }

    #[test]
    fn validate_rejects_nonsense() {
        type Change = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "http.listen",
                Box::new(|c| c.http.listen = "localhost".into()),
            ),
            (
                "http.max_body_bytes",
                Box::new(|c| c.http.max_body_bytes = 0),
            ),
            ("http.max_depth", Box::new(|c| c.http.max_depth = 0)),
            ("http.max_depth", Box::new(|c| c.http.max_depth = 129)),
            ("http.max_fields", Box::new(|c| c.http.max_fields = 0)),
            ("http.max_items", Box::new(|c| c.http.max_items = 0)),
            (
                "http.max_decompressed_bytes",
                Box::new(|c| c.http.max_decompressed_bytes = c.http.max_body_bytes - 1),
            ),
            (
                "http.request_timeout_seconds",
                Box::new(|c| c.http.request_timeout_seconds = 0),
            ),
            (
                "store.retention_interval_seconds",
                Box::new(|c| c.store.retention_interval_seconds = 0),
            ),
            (
                "store.writer_max_batch_events",
                Box::new(|c| c.store.writer_max_batch_events = 0),
            ),
            ("log.level", Box::new(|c| c.log.level = "  ".into())),
            (
                "log.level",
                Box::new(|c| c.log.level = "info,,debug".into()),
            ),
            ("data_dir", Box::new(|c| c.data_dir = PathBuf::new())),
        ];
        for (expected_key, change) in cases {
            let mut config = Config::default();
            change(&mut config);
            match config.validate() {
                Err(ConfigError::Invalid { key, reason }) => {
                    assert_eq!(key, expected_key, "{reason}");
                    assert!(!reason.is_empty());
                }
                other => panic!("{expected_key}: expected invalid, got {other:?}"),
            }
        }
        let mut config = Config::default();
        config.store.retention_days = 0;
        config.store.retention_max_bytes = 0;
        config.http.listen = "[::1]:443".into();
        config.log.level = "warn,isms_server=debug".into();
        config.validate().unwrap();
    }

    #[test]
    fn syslog_time_zones_and_listen_addresses() {
        assert_eq!(parse_fixed_time_zone("UTC"), Some(0));
        assert_eq!(parse_fixed_time_zone("+02:00"), Some(7200));
        assert_eq!(parse_fixed_time_zone("-05:30"), Some(-19800));
        assert_eq!(parse_fixed_time_zone("+0100"), Some(3600));
        assert_eq!(parse_fixed_time_zone("Europe/Berlin"), None);
        assert_eq!(parse_fixed_time_zone("+25:00"), None);
        let berlin = parse_time_zone("Europe/Berlin").expect("the system knows Europe/Berlin");
        let summer: jiff::Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
        assert_eq!(berlin.to_offset(summer).seconds(), 7200);
        let mut config = Config::default();
        config.syslog.time_zone = "Mars/Olympus".into();
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("syslog.time_zone"), "{message}");
        let pairs = parse_source_time_zones(" 10.0.0.7=Europe/Berlin, FW01=-05:00 ,").unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[1].0, "fw01");
        assert_eq!(pairs[1].1.to_offset(summer).seconds(), -18000);
        for (bad, says) in [
            ("10.0.0.7", "pair 1"),
            ("a=UTC,=UTC", "pair 2"),
            ("a=Mars/Olympus", "Mars/Olympus"),
        ] {
            let mut config = Config::default();
            config.syslog.source_time_zones = bad.into();
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains("syslog.source_time_zones"), "{message}");
            assert!(message.contains(says), "{message}");
        }
        let mut config = Config::default();
        config.syslog.tls_listen = "127.0.0.1:6514".into();
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("syslog.tls_certificate"), "{message}");
        config.syslog.tls_certificate = "cert.pem".into();
        config.syslog.tls_key = "key.pem".into();
        config.validate().expect("a TLS receiver with its files");
        let mut config = Config::default();
        config.syslog.udp_listen = "nowhere".into();
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("syslog.udp_listen"), "{message}");
        let mut config = Config::default();
        config.syslog.tcp_listen = String::new();
        config.syslog.udp_listen = String::new();
        config.validate().expect("empty turns the receivers off");
        config.syslog.max_message_bytes = 100;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("480"), "{message}");
        config.syslog.max_message_bytes = MAX_SYSLOG_MESSAGE_BYTES + 1;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("syslog.max_message_bytes"), "{message}");
    }

    #[test]
    fn file_patterns_are_absolute_with_wildcards_only_in_the_name() {
        let patterns =
            parse_file_patterns(" /var/log/auth.log, /var/log/suricata/eve*.json ,").unwrap();
        assert_eq!(
            patterns,
            [
                PathBuf::from("/var/log/auth.log"),
                PathBuf::from("/var/log/suricata/eve*.json")
            ]
        );
        for (bad, says) in [
            ("var/log/auth.log", "not absolute"),
            ("/var/log/a,/var/*/b.log", "path 2"),
            ("/", "names no file"),
        ] {
            let mut config = Config::default();
            config.files.paths = bad.into();
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains("files.paths"), "{message}");
            assert!(message.contains(says), "{message}");
        }
        let mut config = Config::default();
        config.files.poll_interval_milliseconds = 0;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("files.poll_interval_milliseconds")
        );
        let mut config = Config::default();
        config.files.max_line_bytes = 10;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("files.max_line_bytes")
        );
    }

    #[test]
    fn decoder_files_are_read_with_line_and_column_in_errors() {
        let file = write_file(
            "[[decoder]]\nname = \"vpn\"\nprogram = \"openvpn\"\npattern = 'user (?P<username>\\S+) failed'\ncategory = \"authentication\"\nfields = { \"details.result\" = \"failure\" }\n",
        );
        let decoders = load_decoder_file(file.path()).unwrap();
        assert_eq!(decoders.len(), 1);
        assert_eq!(decoders[0].pattern, "user (?P<username>\\S+) failed");
        assert_eq!(decoders[0].fields["details.result"], "failure");
        let broken = write_file("[[decoder]]\nname = \"vpn\"\nprogrm = \"openvpn\"\n");
        match load_decoder_file(broken.path()) {
            Err(ConfigError::Toml { line, message, .. }) => {
                assert_eq!(line, 3, "{message}");
                assert!(message.contains("progrm"), "{message}");
            }
            other => panic!("expected a TOML error, got {other:?}"),
        }
        let mut config = Config::default();
        config.decoders.file = "/nonexistent/decoders.toml".into();
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("decoders.file"), "{message}");
    }

    #[test]
    fn amqp_settings_are_checked() {
        let config = Config::load(
            None,
            &env_from(&[
                ("ISMS_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
                ("ISMS_AMQP_PREFETCH", "10"),
            ]),
        )
        .unwrap();
        assert_eq!(config.amqp.url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(config.amqp.prefetch, 10);
        assert_eq!(config.amqp.exchange, "eventtask");
        assert_eq!(config.amqp.dead_letter_queue, "eventtask.dead");
        config.validate().unwrap();

        type Change = Box<dyn Fn(&mut AmqpConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "amqp.url",
                Box::new(|amqp| amqp.url = "http://127.0.0.1:5672".into()),
            ),
            ("amqp.url", Box::new(|amqp| amqp.url = "amqp://".into())),
            (
                "amqp.url",
                Box::new(|amqp| amqp.url = "amqp://secret pass@host".into()),
            ),
            ("amqp.queue", Box::new(|amqp| amqp.queue = String::new())),
            ("amqp.queue", Box::new(|amqp| amqp.queue = "q".repeat(256))),
            (
                "amqp.exchange",
                Box::new(|amqp| amqp.exchange = "amq.direct".into()),
            ),
            (
                "amqp.dead_letter_queue",
                Box::new(|amqp| amqp.dead_letter_queue = String::new()),
            ),
            (
                "amqp.dead_letter_queue",
                Box::new(|amqp| amqp.dead_letter_queue = amqp.queue.clone()),
            ),
            ("amqp.prefetch", Box::new(|amqp| amqp.prefetch = 0)),
            ("amqp.prefetch", Box::new(|amqp| amqp.prefetch = 65_536)),
            (
                "amqp.max_message_bytes",
                Box::new(|amqp| amqp.max_message_bytes = 100),
            ),
            (
                "amqp.max_message_bytes",
                Box::new(|amqp| amqp.max_message_bytes = MAX_AMQP_MESSAGE_BYTES + 1),
            ),
        ];
        for (expected_key, change) in cases {
            let mut config = Config::default();
            change(&mut config.amqp);
            match config.validate() {
                Err(error @ ConfigError::Invalid { .. }) => {
                    let message = error.to_string();
                    assert!(
                        message.starts_with(&format!("invalid value for {expected_key}: ")),
                        "{message}"
                    );
                    assert!(
                        !message.contains("secret"),
                        "the password leaked: {message}"
                    );
                }
                other => panic!("{expected_key}: expected invalid, got {other:?}"),
            }
        }
        let mut config = Config::default();
        config.amqp.exchange = String::new();
        config.amqp.url = "AMQPS://user:pw@broker.example:5671/prod".into();
        config.amqp.prefetch = MAX_AMQP_PREFETCH;
        config.amqp.max_message_bytes = MAX_AMQP_MESSAGE_BYTES;
        config
            .validate()
            .expect("an empty exchange consumes the queue directly");
    }

    #[test]
    fn reference_lists_every_key() {
        let reference = render_reference();
        assert!(reference.starts_with("| Key | Environment variable |"));
        assert_eq!(reference.lines().count(), CONFIG_KEYS.len() + 2);
        for key in CONFIG_KEYS {
            let line = reference
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", key.key)))
                .unwrap_or_else(|| panic!("{} missing", key.key));
            assert!(line.contains(key.env));
            let default = if key.default.is_empty() {
                "(empty)".to_owned()
            } else {
                format!("`{}`", key.default)
            };
            assert!(line.contains(&default), "{line}");
            assert_eq!(line.matches(" | ").count(), 4, "{line}");
        }
    }
}
