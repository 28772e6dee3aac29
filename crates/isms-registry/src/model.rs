//! The registry's records (seed 000's generator, alert group and alert class models), what a caller
//! sends to make or change one, and the registry's errors with the seed's status texts.
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::syntax::Parameter;

/// The kinds of records, as the store names them and as errors say them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Generator,
    Group,
    Class,
    Instance,
}

impl Kind {
    /// The store's name of the kind.
    pub fn record_kind(self) -> &'static str {
        match self {
            Kind::Generator => "generator",
            Kind::Group => "group",
            Kind::Class => "class",
            Kind::Instance => "instance",
        }
    }

    /// The seed's word for it, capitalized ("Generator already exists").
    pub fn title(self) -> &'static str {
        match self {
            Kind::Generator => "Generator",
            Kind::Group => "Group",
            Kind::Class => "Class",
            Kind::Instance => "Instance",
        }
    }
}

/// Why a registry operation was refused or failed. Each has the seed's status text
/// ([`RegistryError::status`]) and an HTTP code ([`RegistryError::http_code`]).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no live {} named {name:?}{}", .kind.record_kind(), in_generator(.generator))]
    NotFound {
        kind: Kind,
        name: String,
        generator: Option<String>,
    },
    #[error("a live {} named {name:?} already exists{}", .kind.record_kind(), in_generator(.generator))]
    AlreadyExists {
        kind: Kind,
        name: String,
        generator: Option<String>,
    },
    /// A record refers to one that is deleted (registering into a deleted group).
    #[error("the {} {name:?} is deleted", .kind.record_kind())]
    Deleted { kind: Kind, name: String },
    /// A field of the request is not acceptable.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// `verify`: the record exists but differs in these fields.
    #[error("the {} {name:?} is registered with another {}", .kind.record_kind(), .fields.join(", "))]
    Mismatch {
        kind: Kind,
        name: String,
        fields: Vec<String>,
    },
    /// A class's parents lead back to it.
    #[error("parent: the class parents make a cycle: {}", .chain.join(" -> "))]
    CyclicParent { chain: Vec<String> },
    /// A class others inherit from cannot be deleted first.
    #[error("the class {name:?} is the parent of {}; delete or re-parent them first", .children.join(", "))]
    HasChildren { name: String, children: Vec<String> },
    /// A class with live instances cannot be deleted first.
    #[error("the class {name:?} has live instances ({}); remove them first", .instances.join(", "))]
    HasInstances {
        name: String,
        instances: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] isms_store::StoreError),
}

fn in_generator(generator: &Option<String>) -> String {
    generator
        .as_ref()
        .map(|generator| format!(" in generator {generator:?}"))
        .unwrap_or_default()
}

impl RegistryError {
    pub(crate) fn not_found(
        kind: Kind,
        name: impl Into<String>,
        generator: Option<&str>,
    ) -> RegistryError {
        RegistryError::NotFound {
            kind,
            name: name.into(),
            generator: generator.map(str::to_owned),
        }
    }

    /// A live record of this kind already has the name (in this generator, for what belongs to
    /// one).
    pub fn already_exists(
        kind: Kind,
        name: impl Into<String>,
        generator: Option<&str>,
    ) -> RegistryError {
        RegistryError::AlreadyExists {
            kind,
            name: name.into(),
            generator: generator.map(str::to_owned),
        }
    }

    pub(crate) fn invalid(field: &str, reason: String) -> RegistryError {
        RegistryError::Invalid {
            field: field.to_owned(),
            reason,
        }
    }

    /// The seed's status text (`{"status": "Generator already exists", "code": 409}`).
    pub fn status(&self) -> String {
        match self {
            RegistryError::NotFound { kind, .. } => format!("{} not found", kind.title()),
            RegistryError::AlreadyExists { kind, .. } => format!("{} already exists", kind.title()),
            RegistryError::Deleted { kind, .. } => format!("{} is deleted", kind.title()),
            RegistryError::Invalid { .. } => "Invalid request".to_owned(),
            RegistryError::Mismatch { kind, .. } => format!("{} does not match", kind.title()),
            RegistryError::CyclicParent { .. } => "Class parent cycle".to_owned(),
            RegistryError::HasChildren { .. } => "Class has children".to_owned(),
            RegistryError::HasInstances { .. } => "Class has instances".to_owned(),
            RegistryError::Store(_) => "Store error".to_owned(),
        }
    }

    /// The HTTP status code for it.
    pub fn http_code(&self) -> u16 {
        match self {
            RegistryError::NotFound { .. } => 404,
            RegistryError::AlreadyExists { .. }
            | RegistryError::Deleted { .. }
            | RegistryError::Mismatch { .. }
            | RegistryError::HasChildren { .. }
            | RegistryError::HasInstances { .. } => 409,
            RegistryError::Invalid { .. } | RegistryError::CyclicParent { .. } => 422,
            RegistryError::Store(isms_store::StoreError::DuplicateRecordName { .. }) => 409,
            RegistryError::Store(isms_store::StoreError::WriterStopped) => 503,
            RegistryError::Store(_) => 500,
        }
    }
}

/// Names of generators, groups, classes and parameters appear in paths: 1 to 64 letters, digits,
/// `_`, `-` or `.`.
pub(crate) fn check_name(name: &str, field: &str) -> Result<(), RegistryError> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(RegistryError::invalid(
            field,
            format!("use 1 to 64 letters, digits, '_', '-' or '.', found {name:?}"),
        ))
    }
}

/// Free text of at most `most` characters without control characters.
pub(crate) fn check_text(text: &str, field: &str, most: usize) -> Result<(), RegistryError> {
    if text.chars().count() > most {
        return Err(RegistryError::invalid(
            field,
            format!("at most {most} characters, found {}", text.chars().count()),
        ));
    }
    if let Some(control) = text
        .chars()
        .find(|character| character.is_control() && *character != '\n' && *character != '\t')
    {
        return Err(RegistryError::invalid(
            field,
            format!("control character {control:?} not allowed"),
        ));
    }
    Ok(())
}

/// Where a generator's key may be used from.
pub(crate) fn check_bind(bind: &str, ip: Option<&str>) -> Result<(), RegistryError> {
    if bind == "registered" {
        return match ip {
            Some(_) => Ok(()),
            None => Err(RegistryError::invalid(
                "bind",
                "\"registered\" binds the key to the generator's ip, and it has none".to_owned(),
            )),
        };
    }
    if bind.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    bind.parse::<isms_query::network::IpNetwork>()
        .map(|_| ())
        .map_err(|error| {
            RegistryError::invalid(
                "bind",
                format!(
                    "expected \"registered\", an address or a network (10.0.0.0/8): {bind:?}: {error}"
                ),
            )
        })
}

/// A registered alert generator (seed: alert_gen_id, name, author, ip, key, deleted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generator {
    #[serde(skip_deserializing)]
    pub id: i64,
    pub name: String,
    pub author: String,
    /// The address it registered from or declared.
    pub ip: Option<String>,
    /// Where its key may be used from: `registered` (its `ip`), an address or a network; anywhere
    /// when absent.
    pub bind: Option<String>,
    /// The public id of its current key (never the key); none after revocation.
    pub key_id: Option<String>,
    /// How often it is expected to call in (liveness), seconds.
    pub expected_interval_seconds: Option<u64>,
    /// Where the collector pushes its pending changes; it only pulls when absent.
    #[serde(default)]
    pub push_url: Option<String>,
    /// The key pushes are signed with, derived from its current key when that was made (see
    /// `isms_generator::push`); hex. Never shown: [`Generator::public`] leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_signing_key: Option<String>,
    /// When it last called a collector, as last written down (at most every minute; µs since
    /// the epoch). The API shows it as `last_contact`, with what this collector saw since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact_micros: Option<i64>,
    #[serde(skip_deserializing)]
    pub created_micros: i64,
    #[serde(skip_deserializing)]
    pub updated_micros: i64,
    #[serde(skip_deserializing)]
    pub deleted_micros: Option<i64>,
}

impl Generator {
    /// The generator as the API shows it: without the key its pushes are signed with (nor the
    /// last contact as written down: the API shows it as `last_contact`).
    pub fn public(&self) -> Generator {
        Generator {
            push_signing_key: None,
            last_contact_micros: None,
            ..self.clone()
        }
    }

    /// Whether a call from `peer` may use this generator's key.
    pub fn address_allowed(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        match self.bind.as_deref() {
            None => true,
            Some("registered") => self
                .ip
                .as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .is_some_and(|ip| ip.to_canonical() == peer),
            Some(bind) => match bind.parse::<IpAddr>() {
                Ok(address) => address.to_canonical() == peer,
                Err(_) => bind
                    .parse::<isms_query::network::IpNetwork>()
                    .is_ok_and(|network| network.contains(peer)),
            },
        }
    }
}

/// What registering a generator takes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSpec {
    pub name: String,
    pub author: String,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub bind: Option<String>,
    #[serde(default)]
    pub expected_interval_seconds: Option<u64>,
    #[serde(default)]
    pub push_url: Option<String>,
}

/// A generator's key as the registry records it: the public id, and the key its pushes are
/// signed with (derived from the key by whoever made it).
#[derive(Debug, Clone)]
pub struct RecordedKey {
    pub key_id: String,
    pub push_signing_key: String,
}

impl GeneratorSpec {
    /// The generator it registers, with its key.
    pub(crate) fn into_generator(self, key: Option<RecordedKey>) -> Generator {
        let (key_id, push_signing_key) = match key {
            Some(key) => (Some(key.key_id), Some(key.push_signing_key)),
            None => (None, None),
        };
        Generator {
            id: 0,
            name: self.name,
            author: self.author.trim().to_owned(),
            ip: self.ip.filter(|ip| !ip.is_empty()),
            bind: self.bind.filter(|bind| !bind.is_empty()),
            key_id,
            expected_interval_seconds: self.expected_interval_seconds,
            push_url: self.push_url.filter(|url| !url.is_empty()),
            push_signing_key,
            last_contact_micros: None,
            created_micros: 0,
            updated_micros: 0,
            deleted_micros: None,
        }
    }

    /// Checks its fields as registration does, so that nothing (a key) is made for a
    /// registration that will be refused.
    pub fn check(&self) -> Result<(), RegistryError> {
        check_generator(&self.clone().into_generator(None))
    }
}

/// What updating a generator may change (its name cannot change: its key and its events name it).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorChanges {
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    /// `""` removes the binding.
    #[serde(default)]
    pub bind: Option<String>,
    #[serde(default)]
    pub expected_interval_seconds: Option<u64>,
    /// `""` stops pushes.
    #[serde(default)]
    pub push_url: Option<String>,
}

/// What `verify` compares with the registered generator (seed: name, author, ip, key).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorClaims {
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
}

/// An alert group (seed: alert_group_id, name, description, generator, deleted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertGroup {
    #[serde(skip_deserializing)]
    pub id: i64,
    pub name: String,
    pub description: String,
    /// The generator's name.
    pub generator: String,
    #[serde(skip_deserializing)]
    pub created_micros: i64,
    #[serde(skip_deserializing)]
    pub updated_micros: i64,
    #[serde(skip_deserializing)]
    pub deleted_micros: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupChanges {
    #[serde(default)]
    pub description: Option<String>,
}

/// An alert class: a kind of alert (detector type) a generator can produce (seed: alert_class_id,
/// name, description, help, syntax, filter syntax, parent, group, is_operator, is_filter, deleted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertClass {
    #[serde(skip_deserializing)]
    pub id: i64,
    pub name: String,
    pub description: String,
    pub help: String,
    /// Its own parameters; [`crate::Registry::class_parameters`] adds the inherited ones.
    pub syntax: Vec<Parameter>,
    /// The event fields its alerts can be filtered on.
    pub filter_syntax: Vec<String>,
    /// A class of the same generator whose parameters it inherits.
    pub parent: Option<String>,
    /// The group it belongs to (of the same generator).
    pub group: String,
    /// The generator's name.
    pub generator: String,
    pub is_operator: bool,
    pub is_filter: bool,
    #[serde(skip_deserializing)]
    pub created_micros: i64,
    #[serde(skip_deserializing)]
    pub updated_micros: i64,
    #[serde(skip_deserializing)]
    pub deleted_micros: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub help: String,
    #[serde(default)]
    pub syntax: Vec<Parameter>,
    #[serde(default)]
    pub filter_syntax: Vec<String>,
    #[serde(default)]
    pub parent: Option<String>,
    pub group: String,
    #[serde(default)]
    pub is_operator: bool,
    #[serde(default)]
    pub is_filter: bool,
}

/// What updating a class may change; `parent: ""` removes the parent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassChanges {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub help: Option<String>,
    #[serde(default)]
    pub syntax: Option<Vec<Parameter>>,
    #[serde(default)]
    pub filter_syntax: Option<Vec<String>>,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub is_operator: Option<bool>,
    #[serde(default)]
    pub is_filter: Option<bool>,
}

/// Checks the fields of a generator as it would be stored.
pub(crate) fn check_generator(generator: &Generator) -> Result<(), RegistryError> {
    check_name(&generator.name, "name")?;
    if generator.author.trim().is_empty() {
        return Err(RegistryError::invalid(
            "author",
            "the author must be given".to_owned(),
        ));
    }
    check_text(&generator.author, "author", 100)?;
    if let Some(ip) = &generator.ip
        && ip.parse::<IpAddr>().is_err()
    {
        return Err(RegistryError::invalid(
            "ip",
            format!("{ip:?} is not an IP address"),
        ));
    }
    if let Some(bind) = &generator.bind {
        check_bind(bind, generator.ip.as_deref())?;
    }
    if let Some(interval) = generator.expected_interval_seconds
        && !(1..=7 * 24 * 3600).contains(&interval)
    {
        return Err(RegistryError::invalid(
            "expected_interval_seconds",
            format!("1 second to 7 days, found {interval}"),
        ));
    }
    if let Some(push_url) = &generator.push_url {
        check_push_url(push_url)?;
    }
    Ok(())
}

/// Longest push URL.
const MAX_PUSH_URL_BYTES: usize = 2048;

/// A push URL is an `http` or `https` URL with a host and without credentials (pushes are signed;
/// a password in the URL would be shown wherever the generator is).
fn check_push_url(push_url: &str) -> Result<(), RegistryError> {
    let invalid = |reason: String| RegistryError::invalid("push_url", reason);
    if push_url.len() > MAX_PUSH_URL_BYTES {
        return Err(invalid(format!(
            "at most {MAX_PUSH_URL_BYTES} bytes, found {}",
            push_url.len()
        )));
    }
    let parsed = url::Url::parse(push_url)
        .map_err(|error| invalid(format!("{push_url:?} is not a URL: {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "expected an http or https URL, found scheme {:?}",
            parsed.scheme()
        )));
    }
    if parsed.host().is_none() {
        return Err(invalid(format!("{push_url:?} has no host")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "credentials do not belong in the URL: pushes are signed with the generator's key"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Most fields one class may declare filterable.
const MAX_FILTER_FIELDS: usize = 64;

/// Checks the fields of a class as it would be stored (not its references: the registry does).
pub(crate) fn check_class(class: &mut AlertClass) -> Result<(), RegistryError> {
    check_name(&class.name, "name")?;
    check_text(&class.description, "description", 1000)?;
    check_text(&class.help, "help", 10_000)?;
    crate::syntax::check_parameters(&mut class.syntax, "syntax")?;
    if class.filter_syntax.len() > MAX_FILTER_FIELDS {
        return Err(RegistryError::invalid(
            "filter_syntax",
            format!(
                "at most {MAX_FILTER_FIELDS} fields, found {}",
                class.filter_syntax.len()
            ),
        ));
    }
    for (index, field) in class.filter_syntax.iter().enumerate() {
        let is_field = (1..=200).contains(&field.len())
            && field.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-'))
            });
        if !is_field {
            return Err(RegistryError::invalid(
                &format!("filter_syntax[{index}]"),
                format!("{field:?} is not an event field (e.g. details.sourceipaddress)"),
            ));
        }
    }
    if let Some(parent) = &class.parent {
        check_name(parent, "parent")?;
        if parent == &class.name {
            return Err(RegistryError::CyclicParent {
                chain: vec![class.name.clone(), parent.clone()],
            });
        }
    }
    Ok(())
}
