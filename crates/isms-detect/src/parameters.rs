//! The kinds of rule and the parameters each one takes.
//!
//! Seed 002's detectors could be changed while running: each published its parameter list, turned the
//! operator's strings into typed values and refused what did not fit. Here every kind publishes a
//! [`ParameterSpec`] list (name, type, description, default) through [`KINDS`]; a rule's `parameters`
//! are a plain map (from YAML or from the API), and [`KindConfig::from_parameters`] is the one place
//! that checks and types them, so a file, an API call and a run-time change are refused for the same
//! reasons, in the same words.
use std::net::IpAddr;

use isms_query::{CompiledPredicate, FieldPath};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::duration::{format_duration, parse_duration};

/// The most entities a rule may track (the default is [`DEFAULT_MAX_ENTITIES`]).
pub const MAX_ENTITIES_LIMIT: u64 = 10_000_000;

/// Entities a rule tracks unless it says otherwise; past it the least recently seen are evicted.
pub const DEFAULT_MAX_ENTITIES: u64 = 100_000;

/// The largest count threshold: a window never holds more events than this for one entity.
pub const MAX_THRESHOLD: u64 = 100_000;

/// Most steps in a sequence.
pub const MAX_STEPS: usize = 16;

/// The type of a parameter's value, as the API publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParameterType {
    /// Text such as `5m`, `90s`, `1h30m`.
    Duration,
    /// A whole number of at least 0.
    Count,
    /// One event field, dotted: `details.username`.
    Field,
    /// A list of event fields.
    Fields,
    /// One of `ge`, `gt`, `le`, `lt`, `eq`, `ne`.
    Comparison,
    /// A wildcard pattern (`*` any run, `?` one character), ignoring ASCII case.
    Pattern,
    /// A list of IP addresses and CIDR networks.
    Addresses,
    /// Free text, such as a list name.
    Text,
    /// `true` or `false`.
    Boolean,
    /// A list of `{match: QUERY, count: N}` steps.
    Steps,
}

/// One parameter of a kind.
#[derive(Debug, Clone, Serialize)]
pub struct ParameterSpec {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub value_type: ParameterType,
    pub description: &'static str,
    /// The value used when the rule gives none, as JSON text; `None` when the rule must give it.
    #[serde(serialize_with = "default_as_json")]
    pub default: Option<&'static str>,
}

fn default_as_json<S: serde::Serializer>(
    default: &Option<&'static str>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match default {
        Some(text) => serde_json::from_str::<Value>(text)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer),
        None => serializer.serialize_none(),
    }
}

/// A kind of rule: its name, what it does, its parameters.
#[derive(Debug, Clone, Serialize)]
pub struct KindSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub parameters: &'static [ParameterSpec],
}

const GROUP_BY: ParameterSpec = ParameterSpec {
    name: "group_by",
    value_type: ParameterType::Fields,
    description: "Fields whose values make the group key (user, source address, host, ...); each \
                  combination is tracked on its own. An event without one of them is not counted.",
    default: Some("[]"),
};

const INTERVAL: ParameterSpec = ParameterSpec {
    name: "interval",
    value_type: ParameterType::Duration,
    description: "The sliding window on event time.",
    default: Some("\"5m\""),
};

const COMPARE: ParameterSpec = ParameterSpec {
    name: "compare",
    value_type: ParameterType::Comparison,
    description: "How the count compares with the threshold for the entity to be active: ge, gt, \
                  le, lt, eq or ne.",
    default: Some("\"ge\""),
};

const THRESHOLD: ParameterSpec = ParameterSpec {
    name: "threshold",
    value_type: ParameterType::Count,
    description: "The number the count is compared with.",
    default: None,
};

const MAX_ENTITIES: ParameterSpec = ParameterSpec {
    name: "max_entities",
    value_type: ParameterType::Count,
    description: "Most group keys tracked at once; past it the least recently seen are evicted \
                  (counted in isms_detect_evictions_total).",
    default: Some("100000"),
};

/// Every kind, with its parameters.
pub const KINDS: &[KindSpec] = &[
    KindSpec {
        name: "match",
        description: "One matching event, one detection.",
        parameters: &[],
    },
    KindSpec {
        name: "threshold",
        description: "Counts matching events per group key in a sliding interval. A key fires once \
                      when its count satisfies the comparison; while it stays active, further \
                      matches attach to that detection; when it no longer does, a cleared detection \
                      follows.",
        parameters: &[
            GROUP_BY,
            INTERVAL,
            COMPARE,
            THRESHOLD,
            ParameterSpec {
                name: "user_pattern",
                value_type: ParameterType::Pattern,
                description: "Only events whose details.username matches this wildcard pattern.",
                default: None,
            },
            ParameterSpec {
                name: "source_addresses",
                value_type: ParameterType::Addresses,
                description: "Only events whose details.sourceipaddress is one of these addresses \
                              or inside one of these CIDR networks.",
                default: None,
            },
            MAX_ENTITIES,
        ],
    },
    KindSpec {
        name: "distinct_count",
        description: "Counts the distinct values of a field per group key in a sliding interval \
                      (one source trying many user names), with the threshold kind's \
                      fire-once-then-clear behaviour.",
        parameters: &[
            GROUP_BY,
            INTERVAL,
            ParameterSpec {
                name: "field",
                value_type: ParameterType::Field,
                description: "The field whose distinct values are counted.",
                default: None,
            },
            COMPARE,
            THRESHOLD,
            MAX_ENTITIES,
        ],
    },
    KindSpec {
        name: "sequence",
        description: "Steps matched by events of one group key within the interval: in the order \
                      given, or in any order. A step may need several events (five failures, then \
                      a success).",
        parameters: &[
            GROUP_BY,
            INTERVAL,
            ParameterSpec {
                name: "steps",
                value_type: ParameterType::Steps,
                description: "Two or more steps, each `{match: QUERY, count: N}` (count 1 if left \
                              out), ANDed with the rule's match.",
                default: None,
            },
            ParameterSpec {
                name: "ordered",
                value_type: ParameterType::Boolean,
                description: "Whether the steps must happen in the order given.",
                default: Some("true"),
            },
            MAX_ENTITIES,
        ],
    },
    KindSpec {
        name: "absence",
        description: "Fires when a group key seen before (or named in a list) has no matching \
                      event for the interval, on event time and on the clock; a cleared detection \
                      follows when it is heard from again.",
        parameters: &[
            GROUP_BY,
            ParameterSpec {
                name: "interval",
                value_type: ParameterType::Duration,
                description: "Silence longer than this fires.",
                default: None,
            },
            ParameterSpec {
                name: "expected_list",
                value_type: ParameterType::Text,
                description: "A list naming keys expected from the start (for one group_by field), \
                              besides those seen.",
                default: None,
            },
            MAX_ENTITIES,
        ],
    },
    KindSpec {
        name: "first_seen",
        description: "Fires when the values of `fields` were not seen for the group key within the \
                      look-back (a new process on a host, a new source address for a user).",
        parameters: &[
            GROUP_BY,
            ParameterSpec {
                name: "fields",
                value_type: ParameterType::Fields,
                description: "The fields whose combined values must be new.",
                default: None,
            },
            ParameterSpec {
                name: "look_back",
                value_type: ParameterType::Duration,
                description: "A value not seen for this long is new again.",
                default: Some("\"30d\""),
            },
            ParameterSpec {
                name: "learning",
                value_type: ParameterType::Duration,
                description: "For this long after the rule first sees an event, values are learnt \
                              without firing.",
                default: Some("\"0s\""),
            },
            MAX_ENTITIES,
        ],
    },
    KindSpec {
        name: "scheduled",
        description: "Runs the rule's match as a search over the stored events on a schedule (MozDef's \
                      alerts): the events of the look-back, counted (per value of group_by when \
                      given) and compared with the threshold; each count that satisfies it is a \
                      detection. Runs in isms serve (a replay has no store to search).",
        parameters: &[
            ParameterSpec {
                name: "schedule",
                value_type: ParameterType::Text,
                description: "A cron expression in UTC: five fields (minute hour day month weekday), \
                              or six with seconds first; `*/5 * * * *` is every five minutes.",
                default: None,
            },
            ParameterSpec {
                name: "look_back",
                value_type: ParameterType::Duration,
                description: "The time range each run searches, ending at the run.",
                default: Some("\"1h\""),
            },
            ParameterSpec {
                name: "group_by",
                value_type: ParameterType::Fields,
                description: "At most one field: counts per value of it (the 1,000 most frequent).",
                default: Some("[]"),
            },
            COMPARE,
            ParameterSpec {
                name: "threshold",
                value_type: ParameterType::Count,
                description: "The number the count is compared with.",
                default: Some("1"),
            },
        ],
    },
    KindSpec {
        name: "list",
        description: "Fires when a field's value is in a named list (addresses with CIDR, user \
                      names, hashes), or, with negate, when it is not.",
        parameters: &[
            ParameterSpec {
                name: "field",
                value_type: ParameterType::Field,
                description: "The field looked up.",
                default: None,
            },
            ParameterSpec {
                name: "list",
                value_type: ParameterType::Text,
                description: "The list's name.",
                default: None,
            },
            ParameterSpec {
                name: "negate",
                value_type: ParameterType::Boolean,
                description: "Fire when the value is NOT in the list (an event without the field \
                              never fires).",
                default: Some("false"),
            },
        ],
    },
];

/// The spec of a kind by name.
pub fn kind_spec(name: &str) -> Option<&'static KindSpec> {
    KINDS.iter().find(|kind| kind.name == name)
}

/// How a count compares with a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

impl Comparison {
    pub fn holds(self, count: u64, threshold: u64) -> bool {
        match self {
            Comparison::Ge => count >= threshold,
            Comparison::Gt => count > threshold,
            Comparison::Le => count <= threshold,
            Comparison::Lt => count < threshold,
            Comparison::Eq => count == threshold,
            Comparison::Ne => count != threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Ge => ">=",
            Comparison::Gt => ">",
            Comparison::Le => "<=",
            Comparison::Lt => "<",
            Comparison::Eq => "=",
            Comparison::Ne => "!=",
        }
    }
}

/// An IP address or a CIDR network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub address: IpAddr,
    pub prefix: u8,
}

impl Network {
    /// Reads `10.0.0.0/8`, `2001:db8::/32` or a single address.
    pub fn parse(text: &str) -> Result<Network, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR network"))?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|&prefix| prefix <= bits)
                .ok_or_else(|| format!("`{text}` has a prefix length that is not 0 to {bits}"))?,
        };
        Ok(Network { address, prefix })
    }

    /// Whether `address` is inside (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// One step of a sequence.
#[derive(Debug, Clone)]
pub struct Step {
    pub query: String,
    pub predicate: CompiledPredicate,
    pub count: u64,
}

#[derive(Debug, Clone)]
pub struct ThresholdConfig {
    pub group_by: Vec<FieldPath>,
    pub interval_micros: i64,
    pub compare: Comparison,
    pub threshold: u64,
    pub user_pattern: Option<isms_query::CompiledPredicate>,
    pub user_pattern_text: Option<String>,
    pub source_addresses: Vec<Network>,
    pub max_entities: u64,
}

#[derive(Debug, Clone)]
pub struct DistinctCountConfig {
    pub group_by: Vec<FieldPath>,
    pub interval_micros: i64,
    pub field: FieldPath,
    pub compare: Comparison,
    pub threshold: u64,
    pub max_entities: u64,
}

#[derive(Debug, Clone)]
pub struct SequenceConfig {
    pub group_by: Vec<FieldPath>,
    pub interval_micros: i64,
    pub steps: Vec<Step>,
    pub ordered: bool,
    pub max_entities: u64,
}

#[derive(Debug, Clone)]
pub struct AbsenceConfig {
    pub group_by: Vec<FieldPath>,
    pub interval_micros: i64,
    pub expected_list: Option<String>,
    pub max_entities: u64,
}

#[derive(Debug, Clone)]
pub struct FirstSeenConfig {
    pub group_by: Vec<FieldPath>,
    pub fields: Vec<FieldPath>,
    pub look_back_micros: i64,
    pub learning_micros: i64,
    pub max_entities: u64,
}

#[derive(Debug, Clone)]
pub struct ListConfig {
    pub field: FieldPath,
    pub list: String,
    pub negate: bool,
}

#[derive(Debug, Clone)]
pub struct ScheduledConfig {
    pub schedule: String,
    pub cron: croner::Cron,
    pub look_back_micros: i64,
    pub group_by: Vec<FieldPath>,
    pub compare: Comparison,
    pub threshold: u64,
}

impl ScheduledConfig {
    /// The first run strictly after `after` (microseconds since the epoch), if the schedule has one.
    pub fn next_run_after(&self, after: i64) -> Option<i64> {
        let start = jiff::Timestamp::from_microsecond(after)
            .ok()?
            .to_zoned(jiff::tz::TimeZone::UTC);
        self.cron
            .find_next_occurrence(&start, false)
            .ok()
            .map(|next| next.timestamp().as_microsecond())
    }
}

/// A kind with its parameters checked and typed.
#[derive(Debug, Clone)]
pub enum KindConfig {
    Match,
    Threshold(ThresholdConfig),
    DistinctCount(DistinctCountConfig),
    Sequence(SequenceConfig),
    Absence(AbsenceConfig),
    FirstSeen(FirstSeenConfig),
    List(ListConfig),
    Scheduled(ScheduledConfig),
}

/// Reads the parameters of one kind, defaults filled in; every refusal names the parameter.
struct Reader<'a> {
    spec: &'static KindSpec,
    given: &'a Map<String, Value>,
}

impl Reader<'_> {
    fn value(&self, name: &str) -> Result<Option<Value>, String> {
        let spec = self
            .spec
            .parameters
            .iter()
            .find(|parameter| parameter.name == name)
            .expect("a kind reads only its own parameters");
        match self.given.get(name) {
            Some(Value::Null) | None => match spec.default {
                Some(text) => Ok(Some(
                    serde_json::from_str(text).expect("defaults are valid JSON"),
                )),
                None => Ok(None),
            },
            Some(value) => Ok(Some(value.clone())),
        }
    }

    fn required(&self, name: &str) -> Result<Value, String> {
        self.value(name)?.ok_or_else(|| {
            format!(
                "parameter `{name}` is required for kind `{}`",
                self.spec.name
            )
        })
    }

    fn duration(&self, name: &str) -> Result<i64, String> {
        duration_value(name, &self.required(name)?)
    }

    fn positive_duration(&self, name: &str) -> Result<i64, String> {
        let micros = self.duration(name)?;
        if micros <= 0 {
            return Err(format!("parameter `{name}` must be longer than 0s"));
        }
        Ok(micros)
    }

    fn count(&self, name: &str, most: u64) -> Result<u64, String> {
        count_value(name, &self.required(name)?, most)
    }

    fn fields(&self, name: &str) -> Result<Vec<FieldPath>, String> {
        let value = self.required(name)?;
        let items = match &value {
            Value::String(one) => vec![Value::String(one.clone())],
            Value::Array(items) => items.clone(),
            other => {
                return Err(format!(
                    "parameter `{name}` must be a list of field names, not {}",
                    describe(other)
                ));
            }
        };
        items
            .iter()
            .map(|item| field_value(name, item))
            .collect::<Result<Vec<_>, _>>()
    }

    fn field(&self, name: &str) -> Result<FieldPath, String> {
        field_value(name, &self.required(name)?)
    }

    fn comparison(&self, name: &str) -> Result<Comparison, String> {
        match self.required(name)? {
            Value::String(text) => match text.to_ascii_lowercase().as_str() {
                "ge" | ">=" => Ok(Comparison::Ge),
                "gt" | ">" => Ok(Comparison::Gt),
                "le" | "<=" => Ok(Comparison::Le),
                "lt" | "<" => Ok(Comparison::Lt),
                "eq" | "=" | "==" => Ok(Comparison::Eq),
                "ne" | "!=" => Ok(Comparison::Ne),
                _ => Err(format!(
                    "parameter `{name}` is `{text}`: use ge, gt, le, lt, eq or ne"
                )),
            },
            other => Err(format!(
                "parameter `{name}` must be ge, gt, le, lt, eq or ne, not {}",
                describe(&other)
            )),
        }
    }

    fn boolean(&self, name: &str) -> Result<bool, String> {
        match self.required(name)? {
            Value::Bool(value) => Ok(value),
            other => Err(format!(
                "parameter `{name}` must be true or false, not {}",
                describe(&other)
            )),
        }
    }

    fn optional_text(&self, name: &str) -> Result<Option<String>, String> {
        match self.value(name)? {
            None => Ok(None),
            Some(Value::String(text)) if !text.trim().is_empty() => Ok(Some(text)),
            Some(other) => Err(format!(
                "parameter `{name}` must be non-empty text, not {}",
                describe(&other)
            )),
        }
    }

    fn text(&self, name: &str) -> Result<String, String> {
        self.optional_text(name)?.ok_or_else(|| {
            format!(
                "parameter `{name}` is required for kind `{}`",
                self.spec.name
            )
        })
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(value) => format!("the boolean {value}"),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) => format!("the text `{text}`"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a map".to_owned(),
    }
}

fn duration_value(name: &str, value: &Value) -> Result<i64, String> {
    match value {
        Value::String(text) => {
            parse_duration(text).map_err(|reason| format!("parameter `{name}`: {reason}"))
        }
        other => Err(format!(
            "parameter `{name}` must be a duration such as 5m or 90s, not {}",
            describe(other)
        )),
    }
}

fn count_value(name: &str, value: &Value, most: u64) -> Result<u64, String> {
    match value.as_u64() {
        Some(count) if count <= most => Ok(count),
        Some(count) => Err(format!(
            "parameter `{name}` is {count}, more than the largest allowed, {most}"
        )),
        None => Err(format!(
            "parameter `{name}` must be a whole number from 0 to {most}, not {}",
            describe(value)
        )),
    }
}

fn field_value(name: &str, value: &Value) -> Result<FieldPath, String> {
    match value {
        Value::String(text)
            if !text.is_empty()
                && text.split('.').all(|segment| {
                    !segment.is_empty()
                        && segment
                            .chars()
                            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                }) =>
        {
            Ok(FieldPath::parse_dotted(text))
        }
        Value::String(text) => Err(format!(
            "parameter `{name}`: `{text}` is not a field name (dotted words such as details.username)"
        )),
        other => Err(format!(
            "parameter `{name}` must name a field, not {}",
            describe(other)
        )),
    }
}

/// Compiles one query of a rule; the message says where in the query it went wrong.
pub fn compile_query(query: &str) -> Result<CompiledPredicate, String> {
    let predicate = isms_query::parse(query).map_err(|error| error.to_string())?;
    CompiledPredicate::compile(&predicate).map_err(|error| error.to_string())
}

impl KindConfig {
    /// Checks `parameters` against kind `kind` and types them. Unknown parameters are refused, with
    /// the list of those the kind takes.
    pub fn from_parameters(
        kind: &str,
        parameters: &Map<String, Value>,
    ) -> Result<KindConfig, String> {
        let spec = kind_spec(kind).ok_or_else(|| {
            format!(
                "unknown kind `{kind}`: the kinds are {}",
                KINDS
                    .iter()
                    .map(|kind| kind.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        for name in parameters.keys() {
            if !spec
                .parameters
                .iter()
                .any(|parameter| parameter.name == name)
            {
                let known: Vec<&str> = spec
                    .parameters
                    .iter()
                    .map(|parameter| parameter.name)
                    .collect();
                return Err(if known.is_empty() {
                    format!("unknown parameter `{name}`: kind `{kind}` takes none")
                } else {
                    format!(
                        "unknown parameter `{name}` for kind `{kind}`: it takes {}",
                        known.join(", ")
                    )
                });
            }
        }
        let read = Reader {
            spec,
            given: parameters,
        };
        let max_entities = |read: &Reader| -> Result<u64, String> {
            let most = read.count("max_entities", MAX_ENTITIES_LIMIT)?;
            if most == 0 {
                return Err("parameter `max_entities` must be at least 1".to_owned());
            }
            Ok(most)
        };
        Ok(match kind {
            "match" => KindConfig::Match,
            "threshold" => {
                let user_pattern_text = read.optional_text("user_pattern")?;
                let user_pattern = match &user_pattern_text {
                    None => None,
                    Some(pattern) => Some(
                        CompiledPredicate::compile(&isms_query::Predicate::Field {
                            field: FieldPath::parse_dotted("details.username"),
                            test: isms_query::FieldTest::Wildcard(pattern.clone()),
                        })
                        .map_err(|error| format!("parameter `user_pattern`: {error}"))?,
                    ),
                };
                let source_addresses = match read.value("source_addresses")? {
                    None => Vec::new(),
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|item| match item {
                            Value::String(text) => Network::parse(text).map_err(|reason| {
                                format!("parameter `source_addresses`: {reason}")
                            }),
                            other => Err(format!(
                                "parameter `source_addresses` must list addresses as text, not {}",
                                describe(other)
                            )),
                        })
                        .collect::<Result<_, _>>()?,
                    Some(Value::String(text)) => vec![
                        Network::parse(&text)
                            .map_err(|reason| format!("parameter `source_addresses`: {reason}"))?,
                    ],
                    Some(other) => {
                        return Err(format!(
                            "parameter `source_addresses` must be a list of addresses, not {}",
                            describe(&other)
                        ));
                    }
                };
                KindConfig::Threshold(ThresholdConfig {
                    group_by: read.fields("group_by")?,
                    interval_micros: read.positive_duration("interval")?,
                    compare: read.comparison("compare")?,
                    threshold: read.count("threshold", MAX_THRESHOLD)?,
                    user_pattern,
                    user_pattern_text,
                    source_addresses,
                    max_entities: max_entities(&read)?,
                })
            }
            "distinct_count" => KindConfig::DistinctCount(DistinctCountConfig {
                group_by: read.fields("group_by")?,
                interval_micros: read.positive_duration("interval")?,
                field: read.field("field")?,
                compare: read.comparison("compare")?,
                threshold: read.count("threshold", MAX_THRESHOLD)?,
                max_entities: max_entities(&read)?,
            }),
            "sequence" => {
                let steps = match read.required("steps")? {
                    Value::Array(items) => items,
                    other => {
                        return Err(format!(
                            "parameter `steps` must be a list of {{match, count}} steps, not {}",
                            describe(&other)
                        ));
                    }
                };
                if steps.len() < 2 || steps.len() > MAX_STEPS {
                    return Err(format!(
                        "parameter `steps` has {} steps: a sequence has 2 to {MAX_STEPS}",
                        steps.len()
                    ));
                }
                let steps = steps
                    .iter()
                    .enumerate()
                    .map(|(index, step)| step_value(index, step))
                    .collect::<Result<Vec<_>, _>>()?;
                KindConfig::Sequence(SequenceConfig {
                    group_by: read.fields("group_by")?,
                    interval_micros: read.positive_duration("interval")?,
                    steps,
                    ordered: read.boolean("ordered")?,
                    max_entities: max_entities(&read)?,
                })
            }
            "absence" => KindConfig::Absence(AbsenceConfig {
                group_by: read.fields("group_by")?,
                interval_micros: read.positive_duration("interval")?,
                expected_list: read.optional_text("expected_list")?,
                max_entities: max_entities(&read)?,
            }),
            "first_seen" => {
                let fields = read.fields("fields")?;
                if fields.is_empty() {
                    return Err("parameter `fields` must name at least one field".to_owned());
                }
                KindConfig::FirstSeen(FirstSeenConfig {
                    group_by: read.fields("group_by")?,
                    fields,
                    look_back_micros: read.positive_duration("look_back")?,
                    learning_micros: read.duration("learning")?,
                    max_entities: max_entities(&read)?,
                })
            }
            "scheduled" => {
                let schedule = read.text("schedule")?;
                let cron: croner::Cron = schedule.parse().map_err(|error| {
                    format!("parameter `schedule`: `{schedule}` is not a cron expression: {error}")
                })?;
                let group_by = read.fields("group_by")?;
                if group_by.len() > 1 {
                    return Err(
                        "parameter `group_by` of a scheduled rule takes at most one field"
                            .to_owned(),
                    );
                }
                let config = ScheduledConfig {
                    schedule: schedule.clone(),
                    cron,
                    look_back_micros: read.positive_duration("look_back")?,
                    group_by,
                    compare: read.comparison("compare")?,
                    threshold: read.count("threshold", MAX_THRESHOLD)?,
                };
                let now = jiff::Timestamp::now().as_microsecond();
                if config.next_run_after(now).is_none() {
                    return Err(format!(
                        "parameter `schedule`: `{schedule}` never fires (no such date from now on)"
                    ));
                }
                KindConfig::Scheduled(config)
            }
            "list" => KindConfig::List(ListConfig {
                field: read.field("field")?,
                list: read.text("list")?,
                negate: read.boolean("negate")?,
            }),
            _ => unreachable!("every kind of KINDS is read above"),
        })
    }

    /// The kind's name.
    pub fn kind_name(&self) -> &'static str {
        match self {
            KindConfig::Match => "match",
            KindConfig::Threshold(_) => "threshold",
            KindConfig::DistinctCount(_) => "distinct_count",
            KindConfig::Sequence(_) => "sequence",
            KindConfig::Absence(_) => "absence",
            KindConfig::FirstSeen(_) => "first_seen",
            KindConfig::List(_) => "list",
            KindConfig::Scheduled(_) => "scheduled",
        }
    }

    /// The fields of the group key (none for match and list rules).
    pub fn group_by(&self) -> &[FieldPath] {
        match self {
            KindConfig::Match | KindConfig::List(_) => &[],
            KindConfig::Scheduled(config) => &config.group_by,
            KindConfig::Threshold(config) => &config.group_by,
            KindConfig::DistinctCount(config) => &config.group_by,
            KindConfig::Sequence(config) => &config.group_by,
            KindConfig::Absence(config) => &config.group_by,
            KindConfig::FirstSeen(config) => &config.group_by,
        }
    }

    /// The window, where the kind has one, as text for messages.
    pub fn interval_text(&self) -> Option<String> {
        match self {
            KindConfig::Threshold(config) => Some(format_duration(config.interval_micros)),
            KindConfig::DistinctCount(config) => Some(format_duration(config.interval_micros)),
            KindConfig::Sequence(config) => Some(format_duration(config.interval_micros)),
            KindConfig::Absence(config) => Some(format_duration(config.interval_micros)),
            KindConfig::FirstSeen(config) => Some(format_duration(config.look_back_micros)),
            KindConfig::Scheduled(config) => Some(format_duration(config.look_back_micros)),
            KindConfig::Match | KindConfig::List(_) => None,
        }
    }
}

fn step_value(index: usize, step: &Value) -> Result<Step, String> {
    let number = index + 1;
    let Value::Object(map) = step else {
        return Err(format!(
            "step {number} of `steps` must be a map {{match: QUERY, count: N}}, not {}",
            describe(step)
        ));
    };
    for key in map.keys() {
        if key != "match" && key != "count" {
            return Err(format!(
                "step {number} of `steps` has the unknown key `{key}`: a step has match and count"
            ));
        }
    }
    let query = match map.get("match") {
        Some(Value::String(query)) => query.clone(),
        _ => return Err(format!("step {number} of `steps` needs `match`, a query")),
    };
    let predicate = compile_query(&query)
        .map_err(|reason| format!("step {number} of `steps`, match `{query}`: {reason}"))?;
    let count = match map.get("count") {
        None => 1,
        Some(value) => match value.as_u64() {
            Some(count @ 1..=MAX_THRESHOLD) => count,
            _ => {
                return Err(format!(
                    "step {number} of `steps`: count must be a whole number from 1 to {MAX_THRESHOLD}"
                ));
            }
        },
    };
    Ok(Step {
        query,
        predicate,
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameters(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn threshold_parameters_are_typed_with_defaults_filled_in() {
        let config = KindConfig::from_parameters(
            "threshold",
            &parameters(r#"{"group_by": ["details.username"], "threshold": 5}"#),
        )
        .unwrap();
        let KindConfig::Threshold(config) = config else {
            panic!("a threshold kind")
        };
        assert_eq!(config.interval_micros, 300_000_000);
        assert_eq!(config.compare, Comparison::Ge);
        assert_eq!(config.threshold, 5);
        assert_eq!(config.max_entities, DEFAULT_MAX_ENTITIES);
        assert_eq!(
            config.group_by,
            vec![FieldPath::parse_dotted("details.username")]
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_parameter_and_the_reason() {
        let refuse = |kind: &str, json: &str| {
            KindConfig::from_parameters(kind, &parameters(json)).unwrap_err()
        };
        assert!(
            refuse("threshold", r#"{"threshold": -1}"#)
                .contains("`threshold` must be a whole number")
        );
        assert!(refuse("threshold", "{}").contains("`threshold` is required"));
        assert!(refuse("threshold", r#"{"threshold": 5, "interval": "5"}"#).contains("no unit"));
        assert!(
            refuse("threshold", r#"{"threshold": 5, "interval": "0s"}"#).contains("longer than 0s")
        );
        assert!(
            refuse("threshold", r#"{"threshold": 5, "compare": "bigger"}"#).contains("use ge, gt")
        );
        assert!(
            refuse("threshold", r#"{"threshold": 5, "windwo": "5m"}"#)
                .contains("unknown parameter `windwo`")
        );
        assert!(
            refuse("threshold", r#"{"threshold": 5, "group_by": ["a b"]}"#)
                .contains("not a field name")
        );
        assert!(
            refuse(
                "threshold",
                r#"{"threshold": 5, "source_addresses": ["10.0.0.0/33"]}"#
            )
            .contains("prefix length")
        );
        assert!(refuse("sequence", r#"{"steps": [{"match": "a:b"}]}"#).contains("2 to 16"));
        assert!(
            refuse(
                "sequence",
                r#"{"steps": [{"match": "a:b"}, {"match": "(("}]}"#
            )
            .contains("step 2")
        );
        assert!(refuse("frequency", "{}").contains("unknown kind `frequency`"));
        assert!(refuse("match", r#"{"threshold": 1}"#).contains("takes none"));
        assert!(
            refuse("scheduled", r#"{"schedule": "every day"}"#).contains("not a cron expression")
        );
        assert!(refuse("scheduled", r#"{"schedule": "0 0 30 2 *"}"#).contains("never fires"));
        assert!(
            refuse(
                "scheduled",
                r#"{"schedule": "*/5 * * * *", "group_by": ["a", "b"]}"#
            )
            .contains("at most one field")
        );
    }

    #[test]
    fn networks_hold_their_addresses_and_no_others() {
        let network = Network::parse("10.1.0.0/16").unwrap();
        assert!(network.contains("10.1.200.3".parse().unwrap()));
        assert!(network.contains("::ffff:10.1.0.1".parse().unwrap()));
        assert!(!network.contains("10.2.0.1".parse().unwrap()));
        assert!(
            Network::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        let single = Network::parse("2001:db8::1").unwrap();
        assert!(single.contains("2001:db8::1".parse().unwrap()));
        assert!(!single.contains("2001:db8::2".parse().unwrap()));
        assert!(
            Network::parse("2001:db8::/32")
                .unwrap()
                .contains("2001:db8:ffff::9".parse().unwrap())
        );
    }

    #[test]
    fn every_kind_publishes_defaults_that_its_reader_accepts() {
        for kind in KINDS {
            for parameter in kind.parameters {
                if let Some(text) = parameter.default {
                    let value: Value = serde_json::from_str(text).unwrap();
                    assert!(!value.is_null(), "{}.{}", kind.name, parameter.name);
                }
            }
            serde_json::to_string(kind).unwrap();
        }
    }
}
