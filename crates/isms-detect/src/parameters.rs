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
    /// A map of comparisons all to be satisfied: `{ge: 10, le: 20}`.
    Condition,
    /// One of `count`, `sum`, `avg`, `median`, `percentile`.
    Aggregate,
    /// A number from 0 to 100.
    Percentile,
    /// A list of `{match: QUERY, group_by: [FIELDS]}`.
    GroupsPerRule,
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
    description: "The number the count is compared with (required unless `condition` is given).",
    default: None,
};

const CONDITION: ParameterSpec = ParameterSpec {
    name: "condition",
    value_type: ParameterType::Condition,
    description: "Instead of compare and threshold: comparisons the window's value must all \
                  satisfy, operator to number, such as {ge: 10, le: 20} (a range) or {eq: 3}; \
                  operators ge, gt, le, lt, eq, ne (gte, lte, neq as Sigma writes them). The key \
                  fires when its value enters the range and clears when it leaves it.",
    default: None,
};

const GROUP_BY_PER_RULE: ParameterSpec = ParameterSpec {
    name: "group_by_per_rule",
    value_type: ParameterType::GroupsPerRule,
    description: "Where each kind of event keeps the group key: a list of {match: QUERY, \
                  group_by: [FIELDS]}, each with as many fields as group_by; an event takes its \
                  key from the fields of the first entry it matches (the key's values are shown \
                  under group_by's names), or from group_by itself when it matches none. For \
                  events of different sources naming one thing differently (Sigma's aliases).",
    default: Some("[]"),
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
        description: "Counts matching events (or sums, averages, takes a percentile of a numeric \
                      field) per group key in a sliding interval. A key fires once when its value \
                      satisfies the comparison; while it stays active, further \
                      matches attach to that detection; when it no longer does, a cleared detection \
                      follows.",
        parameters: &[
            GROUP_BY,
            GROUP_BY_PER_RULE,
            INTERVAL,
            COMPARE,
            THRESHOLD,
            CONDITION,
            ParameterSpec {
                name: "aggregate",
                value_type: ParameterType::Aggregate,
                description: "What is compared: count (the matching events), or sum, avg, median \
                              or percentile of the numeric values of `field` in the window. An \
                              event whose field is not a number (nor text holding one) is not \
                              counted. A key keeps at most the window's newest 10000 values.",
                default: Some("\"count\""),
            },
            ParameterSpec {
                name: "field",
                value_type: ParameterType::Field,
                description: "The numeric field aggregated (required unless aggregate is count).",
                default: None,
            },
            ParameterSpec {
                name: "percentile",
                value_type: ParameterType::Percentile,
                description: "For aggregate percentile: the rank, 0 to 100 (linear interpolation \
                              between the window's sorted values).",
                default: Some("50"),
            },
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
            GROUP_BY_PER_RULE,
            INTERVAL,
            ParameterSpec {
                name: "field",
                value_type: ParameterType::Field,
                description: "The field whose distinct values are counted.",
                default: None,
            },
            COMPARE,
            THRESHOLD,
            CONDITION,
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
            GROUP_BY_PER_RULE,
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
            ParameterSpec {
                name: "interval_field",
                value_type: ParameterType::Field,
                description: "A field holding a key's own interval (seconds, or a duration such \
                              as 90s), taken from its latest event in place of `interval`.",
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

impl Comparison {
    /// Whether `value` compares so with `bound` (numbers of any size: sums, averages).
    pub fn holds_for(self, value: f64, bound: f64) -> bool {
        match self {
            Comparison::Ge => value >= bound,
            Comparison::Gt => value > bound,
            Comparison::Le => value <= bound,
            Comparison::Lt => value < bound,
            Comparison::Eq => value == bound,
            Comparison::Ne => value != bound,
        }
    }

    fn parse(text: &str) -> Option<Comparison> {
        Some(match text.to_ascii_lowercase().as_str() {
            "ge" | "gte" | ">=" => Comparison::Ge,
            "gt" | ">" => Comparison::Gt,
            "le" | "lte" | "<=" => Comparison::Le,
            "lt" | "<" => Comparison::Lt,
            "eq" | "=" | "==" => Comparison::Eq,
            "ne" | "neq" | "!=" => Comparison::Ne,
            _ => return None,
        })
    }
}

/// The comparisons a window's value (a count, a sum, ...) must all satisfy: one (`ge 5`, from
/// `compare` and `threshold`) or several (a range, from `condition`).
#[derive(Debug, Clone, PartialEq)]
pub struct ValueCondition {
    pub bounds: Vec<(Comparison, f64)>,
}

impl ValueCondition {
    /// One comparison.
    pub fn single(compare: Comparison, threshold: u64) -> ValueCondition {
        ValueCondition {
            bounds: vec![(compare, threshold as f64)],
        }
    }

    /// Whether `value` satisfies every comparison.
    pub fn holds(&self, value: f64) -> bool {
        self.bounds
            .iter()
            .all(|&(compare, bound)| compare.holds_for(value, bound))
    }

    /// How many counted things (events, values) a window must keep to decide: one more than the
    /// largest bound, since any count past it compares the same as that one.
    pub fn counts_needed(&self) -> usize {
        let largest = self
            .bounds
            .iter()
            .map(|&(_, bound)| bound)
            .fold(0.0_f64, f64::max);
        (largest.ceil() as usize).saturating_add(1)
    }

    /// The number messages show as `{threshold}`: the lower bound where there is one, else the
    /// first bound.
    pub fn threshold(&self) -> u64 {
        self.bounds
            .iter()
            .find(|(compare, _)| matches!(compare, Comparison::Ge | Comparison::Gt))
            .or(self.bounds.first())
            .map_or(0, |&(_, bound)| bound.max(0.0) as u64)
    }

    /// `>= 10 and <= 20`.
    pub fn text(&self) -> String {
        self.bounds
            .iter()
            .map(|(compare, bound)| format!("{} {bound}", compare.symbol()))
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

/// What a threshold rule compares: the count of its events, or an aggregate of a numeric field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregate {
    Count,
    Sum,
    Average,
    Median,
    /// The value at this rank (0 to 100), interpolated linearly between the sorted values.
    Percentile(f64),
}

impl Aggregate {
    /// The aggregate of `values` (finite numbers, in any order); `None` for no values.
    pub fn of(self, values: impl Iterator<Item = f64>) -> Option<f64> {
        let mut values: Vec<f64> = values.collect();
        if values.is_empty() {
            return None;
        }
        let sum = || values.iter().sum::<f64>();
        Some(match self {
            Aggregate::Count => values.len() as f64,
            Aggregate::Sum => sum(),
            Aggregate::Average => sum() / values.len() as f64,
            Aggregate::Median | Aggregate::Percentile(_) => {
                let rank = match self {
                    Aggregate::Percentile(rank) => rank,
                    _ => 50.0,
                };
                values.sort_by(f64::total_cmp);
                let position = rank.clamp(0.0, 100.0) / 100.0 * (values.len() - 1) as f64;
                let lower = position.floor() as usize;
                let upper = position.ceil() as usize;
                let fraction = position - lower as f64;
                values[lower] + fraction * (values[upper] - values[lower])
            }
        })
    }
}

/// Where the events one query matches keep the group key (`group_by_per_rule`).
#[derive(Debug, Clone)]
pub struct RuleGroup {
    pub query: String,
    pub predicate: CompiledPredicate,
    pub fields: Vec<FieldPath>,
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
    pub group_by_per_rule: Vec<RuleGroup>,
    pub interval_micros: i64,
    pub condition: ValueCondition,
    pub aggregate: Aggregate,
    /// The aggregated field (aggregates other than count).
    pub field: Option<FieldPath>,
    pub user_pattern: Option<isms_query::CompiledPredicate>,
    pub user_pattern_text: Option<String>,
    pub source_addresses: Vec<Network>,
    pub max_entities: u64,
}

#[derive(Debug, Clone)]
pub struct DistinctCountConfig {
    pub group_by: Vec<FieldPath>,
    pub group_by_per_rule: Vec<RuleGroup>,
    pub interval_micros: i64,
    pub field: FieldPath,
    pub condition: ValueCondition,
    pub max_entities: u64,
}

#[derive(Debug, Clone)]
pub struct SequenceConfig {
    pub group_by: Vec<FieldPath>,
    pub group_by_per_rule: Vec<RuleGroup>,
    pub interval_micros: i64,
    pub steps: Vec<Step>,
    pub ordered: bool,
    pub max_entities: u64,
}

#[derive(Debug, Clone)]
pub struct AbsenceConfig {
    pub group_by: Vec<FieldPath>,
    pub interval_micros: i64,
    /// A field whose value (seconds, or a duration such as `90s`) is the interval of the key
    /// whose event carries it, in place of `interval` (a heartbeat that says when to expect the
    /// next one).
    pub interval_field: Option<FieldPath>,
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
            Value::String(text) => Comparison::parse(&text).ok_or_else(|| {
                format!("parameter `{name}` is `{text}`: use ge, gt, le, lt, eq or ne")
            }),
            other => Err(format!(
                "parameter `{name}` must be ge, gt, le, lt, eq or ne, not {}",
                describe(&other)
            )),
        }
    }

    /// `condition` when given (then `compare` and `threshold` must not be), else `compare` and
    /// `threshold`. Counts (`most`: the largest bound a count may be compared with) take bounds
    /// from 0 to `most`; aggregates (`most` None) any finite number.
    fn value_condition(&self, most: Option<u64>) -> Result<ValueCondition, String> {
        let Some(given) = self.value("condition")? else {
            return Ok(ValueCondition::single(
                self.comparison("compare")?,
                self.count("threshold", most.unwrap_or(u64::MAX))?,
            ));
        };
        for other in ["compare", "threshold"] {
            if self.given.get(other).is_some_and(|value| !value.is_null()) {
                return Err(format!(
                    "parameter `condition` replaces `compare` and `threshold`: give one or the other, not `{other}` too"
                ));
            }
        }
        let Value::Object(map) = given else {
            return Err(format!(
                "parameter `condition` must be a map of comparisons such as {{ge: 10, le: 20}}, not {}",
                describe(&given)
            ));
        };
        if map.is_empty() {
            return Err("parameter `condition` needs at least one comparison".to_owned());
        }
        let mut bounds = Vec::new();
        for (operator, bound) in &map {
            let compare = Comparison::parse(operator).ok_or_else(|| {
                format!(
                    "parameter `condition` has `{operator}`: the comparisons are ge, gt, le, lt, eq and ne"
                )
            })?;
            let number = match (most, bound) {
                (Some(most), _) => {
                    count_value(&format!("condition.{operator}"), bound, most)? as f64
                }
                (None, Value::Number(number)) => number
                    .as_f64()
                    .filter(|number| number.is_finite())
                    .ok_or_else(|| {
                        format!("parameter `condition.{operator}` must be a finite number")
                    })?,
                (None, other) => {
                    return Err(format!(
                        "parameter `condition.{operator}` must be a number, not {}",
                        describe(other)
                    ));
                }
            };
            bounds.push((compare, number));
        }
        Ok(ValueCondition { bounds })
    }

    fn group_by_per_rule(&self, group_by: &[FieldPath]) -> Result<Vec<RuleGroup>, String> {
        let name = "group_by_per_rule";
        let items = match self.required(name)? {
            Value::Array(items) => items,
            other => {
                return Err(format!(
                    "parameter `{name}` must be a list of {{match, group_by}} entries, not {}",
                    describe(&other)
                ));
            }
        };
        if items.len() > MAX_STEPS {
            return Err(format!(
                "parameter `{name}` has {} entries: at most {MAX_STEPS}",
                items.len()
            ));
        }
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let number = index + 1;
                let Value::Object(map) = item else {
                    return Err(format!(
                        "entry {number} of `{name}` must be a map {{match: QUERY, group_by: [FIELDS]}}, not {}",
                        describe(item)
                    ));
                };
                if let Some(key) = map.keys().find(|key| *key != "match" && *key != "group_by") {
                    return Err(format!(
                        "entry {number} of `{name}` has the unknown key `{key}`: an entry has match and group_by"
                    ));
                }
                let query = match map.get("match") {
                    Some(Value::String(query)) => query.clone(),
                    _ => return Err(format!("entry {number} of `{name}` needs `match`, a query")),
                };
                let predicate = compile_query(&query).map_err(|reason| {
                    format!("entry {number} of `{name}`, match `{query}`: {reason}")
                })?;
                let fields = match map.get("group_by") {
                    Some(Value::Array(fields)) => fields
                        .iter()
                        .map(|field| field_value(&format!("{name}[{number}].group_by"), field))
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => {
                        return Err(format!(
                            "entry {number} of `{name}` needs `group_by`, a list of fields"
                        ));
                    }
                };
                if fields.len() != group_by.len() {
                    return Err(format!(
                        "entry {number} of `{name}` has {} group_by fields where `group_by` has {}: each names where the same key field is",
                        fields.len(),
                        group_by.len()
                    ));
                }
                Ok(RuleGroup {
                    query,
                    predicate,
                    fields,
                })
            })
            .collect()
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
                let aggregate = match read.required("aggregate")? {
                    Value::String(text) => match text.to_ascii_lowercase().as_str() {
                        "count" => Aggregate::Count,
                        "sum" => Aggregate::Sum,
                        "avg" | "average" => Aggregate::Average,
                        "median" => Aggregate::Median,
                        "percentile" => {
                            let rank = read.required("percentile")?;
                            match rank.as_f64() {
                                Some(rank) if (0.0..=100.0).contains(&rank) => {
                                    Aggregate::Percentile(rank)
                                }
                                _ => {
                                    return Err(format!(
                                        "parameter `percentile` must be a number from 0 to 100, not {}",
                                        describe(&rank)
                                    ));
                                }
                            }
                        }
                        _ => {
                            return Err(format!(
                                "parameter `aggregate` is `{text}`: use count, sum, avg, median or percentile"
                            ));
                        }
                    },
                    other => {
                        return Err(format!(
                            "parameter `aggregate` must be count, sum, avg, median or percentile, not {}",
                            describe(&other)
                        ));
                    }
                };
                if !matches!(aggregate, Aggregate::Percentile(_))
                    && parameters
                        .get("percentile")
                        .is_some_and(|value| !value.is_null())
                {
                    return Err(
                        "parameter `percentile` is only for aggregate percentile".to_owned()
                    );
                }
                let field = match aggregate {
                    Aggregate::Count => {
                        if parameters
                            .get("field")
                            .is_some_and(|value| !value.is_null())
                        {
                            return Err(
                                "parameter `field` is only for aggregates other than count (sum, avg, median, percentile)"
                                    .to_owned(),
                            );
                        }
                        None
                    }
                    _ => Some(read.field("field")?),
                };
                let condition = read.value_condition(match aggregate {
                    Aggregate::Count => Some(MAX_THRESHOLD),
                    _ => None,
                })?;
                let group_by = read.fields("group_by")?;
                KindConfig::Threshold(ThresholdConfig {
                    group_by_per_rule: read.group_by_per_rule(&group_by)?,
                    group_by,
                    interval_micros: read.positive_duration("interval")?,
                    condition,
                    aggregate,
                    field,
                    user_pattern,
                    user_pattern_text,
                    source_addresses,
                    max_entities: max_entities(&read)?,
                })
            }
            "distinct_count" => {
                let group_by = read.fields("group_by")?;
                KindConfig::DistinctCount(DistinctCountConfig {
                    group_by_per_rule: read.group_by_per_rule(&group_by)?,
                    group_by,
                    interval_micros: read.positive_duration("interval")?,
                    field: read.field("field")?,
                    condition: read.value_condition(Some(MAX_THRESHOLD))?,
                    max_entities: max_entities(&read)?,
                })
            }
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
                let group_by = read.fields("group_by")?;
                KindConfig::Sequence(SequenceConfig {
                    group_by_per_rule: read.group_by_per_rule(&group_by)?,
                    group_by,
                    interval_micros: read.positive_duration("interval")?,
                    steps,
                    ordered: read.boolean("ordered")?,
                    max_entities: max_entities(&read)?,
                })
            }
            "absence" => KindConfig::Absence(AbsenceConfig {
                group_by: read.fields("group_by")?,
                interval_micros: read.positive_duration("interval")?,
                interval_field: match read.value("interval_field")? {
                    None => None,
                    Some(value) => Some(field_value("interval_field", &value)?),
                },
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
        assert_eq!(config.condition, ValueCondition::single(Comparison::Ge, 5));
        assert_eq!(config.aggregate, Aggregate::Count);
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
    fn conditions_aggregates_and_keys_per_rule_are_typed_and_their_mistakes_refused() {
        let config = KindConfig::from_parameters(
            "threshold",
            &parameters(
                r#"{"condition": {"gte": 10, "lt": 20}, "aggregate": "percentile", "field": "details.bytes", "percentile": 95}"#,
            ),
        )
        .unwrap();
        let KindConfig::Threshold(config) = config else {
            panic!("a threshold kind")
        };
        assert_eq!(config.aggregate, Aggregate::Percentile(95.0));
        assert!(config.condition.holds(10.0) && config.condition.holds(19.5));
        assert!(!config.condition.holds(9.0) && !config.condition.holds(20.0));
        assert_eq!(config.condition.counts_needed(), 21);
        assert_eq!(config.condition.threshold(), 10);

        let refuse = |kind: &str, json: &str| {
            KindConfig::from_parameters(kind, &parameters(json)).unwrap_err()
        };
        assert!(
            refuse("threshold", r#"{"threshold": 5, "condition": {"ge": 5}}"#)
                .contains("`condition` replaces `compare` and `threshold`")
        );
        assert!(refuse("threshold", r#"{"condition": {}}"#).contains("at least one comparison"));
        assert!(refuse("threshold", r#"{"condition": {"about": 5}}"#).contains("has `about`"));
        assert!(
            refuse(
                "distinct_count",
                r#"{"field": "a", "condition": {"ge": 200000}}"#
            )
            .contains("more than the largest allowed")
        );
        assert!(
            refuse(
                "threshold",
                r#"{"aggregate": "sum", "condition": {"ge": 5}}"#
            )
            .contains("`field` is required")
        );
        assert!(
            refuse("threshold", r#"{"threshold": 5, "field": "details.bytes"}"#)
                .contains("only for aggregates other than count")
        );
        assert!(
            refuse(
                "threshold",
                r#"{"aggregate": "percentile", "field": "a", "percentile": 101, "condition": {"ge": 1}}"#
            )
            .contains("from 0 to 100")
        );
        assert!(
            refuse(
                "threshold",
                r#"{"aggregate": "sum", "field": "a", "percentile": 50, "condition": {"ge": 1}}"#
            )
            .contains("only for aggregate percentile")
        );
        assert!(
            refuse("threshold", r#"{"aggregate": "mode", "threshold": 1}"#)
                .contains("use count, sum, avg, median or percentile")
        );
        assert!(
            refuse(
                "sequence",
                r#"{"group_by": ["a"], "steps": [{"match": "a:b"}, {"match": "c:d"}], "group_by_per_rule": [{"match": "a:b", "group_by": ["x", "y"]}]}"#
            )
            .contains("has 2 group_by fields where `group_by` has 1")
        );
        assert!(
            refuse(
                "threshold",
                r#"{"threshold": 1, "group_by_per_rule": [{"match": "((", "group_by": []}]}"#
            )
            .contains("entry 1 of `group_by_per_rule`")
        );
        // Sums and averages are compared with any number, not only counts.
        assert!(
            KindConfig::from_parameters(
                "threshold",
                &parameters(r#"{"aggregate": "avg", "field": "a", "condition": {"gt": 2.5e9}}"#),
            )
            .is_ok()
        );
    }

    #[test]
    fn aggregates_of_numbers() {
        let values = || [4.0, 1.0, 3.0, 2.0].into_iter();
        assert_eq!(Aggregate::Sum.of(values()), Some(10.0));
        assert_eq!(Aggregate::Average.of(values()), Some(2.5));
        assert_eq!(Aggregate::Median.of(values()), Some(2.5));
        assert_eq!(Aggregate::Percentile(100.0).of(values()), Some(4.0));
        assert_eq!(Aggregate::Percentile(0.0).of(values()), Some(1.0));
        assert_eq!(Aggregate::Percentile(75.0).of(values()), Some(3.25));
        assert_eq!(Aggregate::Sum.of(std::iter::empty()), None);
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
