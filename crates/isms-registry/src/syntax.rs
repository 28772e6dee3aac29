//! An alert class's `syntax`: the parameters an instance of the class takes (name, type,
//! description, required, default), and the check of an instance's arguments against them.
//!
//! Seed 000 kept syntax as free text; a schema lets the collector refuse a bad instance with a
//! precise error before any generator sees it (seed: `instantiate_alert_generator("HIDS",
//! "TCP_MISSING", "12133", {"port": "80"})`). Arguments arrive as JSON; the seed sent every value
//! as text, so a text that reads as the declared type is accepted and stored as that type.
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{RegistryError, check_name};

/// What a parameter's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParameterType {
    String,
    Integer,
    Number,
    Boolean,
    /// A TCP or UDP port, 1 to 65535.
    Port,
    /// An IPv4 or IPv6 address.
    Address,
    /// An IP network, `address/length`.
    Network,
}

impl ParameterType {
    pub fn name(self) -> &'static str {
        match self {
            ParameterType::String => "string",
            ParameterType::Integer => "integer",
            ParameterType::Number => "number",
            ParameterType::Boolean => "boolean",
            ParameterType::Port => "port",
            ParameterType::Address => "address",
            ParameterType::Network => "network",
        }
    }

    /// The value as this type (a text that reads as it is accepted), or why not.
    pub fn coerce(self, value: &Value) -> Result<Value, String> {
        let text = value.as_str().map(str::trim);
        let expected = || format!("expected {} {}, found {value}", article(self), self.name());
        match self {
            ParameterType::String => match value {
                Value::String(_) => Ok(value.clone()),
                Value::Number(number) => Ok(Value::String(number.to_string())),
                Value::Bool(flag) => Ok(Value::String(flag.to_string())),
                _ => Err(expected()),
            },
            ParameterType::Integer => match (value.as_i64(), text) {
                (Some(number), _) => Ok(Value::from(number)),
                (None, Some(text)) => text.parse::<i64>().map(Value::from).map_err(|_| expected()),
                _ => Err(expected()),
            },
            ParameterType::Number => match (value.as_f64(), text) {
                (Some(_), _) => Ok(value.clone()),
                (None, Some(text)) => text
                    .parse::<f64>()
                    .ok()
                    .filter(|number| number.is_finite())
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(expected),
                _ => Err(expected()),
            },
            ParameterType::Boolean => match (value, text) {
                (Value::Bool(flag), _) => Ok(Value::Bool(*flag)),
                (_, Some("true")) => Ok(Value::Bool(true)),
                (_, Some("false")) => Ok(Value::Bool(false)),
                _ => Err(expected()),
            },
            ParameterType::Port => {
                let number = match (value.as_i64(), text) {
                    (Some(number), _) => Some(number),
                    (None, Some(text)) => text.parse::<i64>().ok(),
                    _ => None,
                };
                match number {
                    Some(port @ 1..=65535) => Ok(Value::from(port)),
                    Some(other) => Err(format!("a port is 1 to 65535, found {other}")),
                    None => Err(expected()),
                }
            }
            ParameterType::Address => match text.map(str::parse::<IpAddr>) {
                Some(Ok(address)) => Ok(Value::String(address.to_string())),
                _ => Err(expected()),
            },
            ParameterType::Network => {
                match text.map(str::parse::<isms_query::network::IpNetwork>) {
                    Some(Ok(network)) => Ok(Value::String(network.to_string())),
                    Some(Err(error)) => Err(format!("{}: {error}", expected())),
                    None => Err(expected()),
                }
            }
        }
    }
}

fn article(kind: ParameterType) -> &'static str {
    match kind {
        ParameterType::Integer | ParameterType::Address => "an",
        _ => "a",
    }
}

/// One parameter of an alert class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ParameterType,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    /// Taken when an instance gives no value; must be of the parameter's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// Most parameters one class declares.
pub const MAX_PARAMETERS: usize = 64;

/// Checks a class's declared parameters: names valid and distinct, defaults of their type, a
/// required parameter without a default. `field` names where they came from, for the error.
pub fn check_parameters(parameters: &mut [Parameter], field: &str) -> Result<(), RegistryError> {
    if parameters.len() > MAX_PARAMETERS {
        return Err(RegistryError::invalid(
            field,
            format!(
                "at most {MAX_PARAMETERS} parameters, found {}",
                parameters.len()
            ),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (index, parameter) in parameters.iter_mut().enumerate() {
        let place = format!("{field}[{index}]");
        check_name(&parameter.name, &format!("{place}.name"))?;
        if !seen.insert(parameter.name.clone()) {
            return Err(RegistryError::invalid(
                &format!("{place}.name"),
                format!("the parameter {:?} is declared twice", parameter.name),
            ));
        }
        if parameter.description.chars().count() > 1000 {
            return Err(RegistryError::invalid(
                &format!("{place}.description"),
                "at most 1000 characters".to_owned(),
            ));
        }
        if let Some(default) = &parameter.default {
            let coerced = parameter
                .kind
                .coerce(default)
                .map_err(|reason| RegistryError::invalid(&format!("{place}.default"), reason))?;
            parameter.default = Some(coerced);
            if parameter.required {
                return Err(RegistryError::invalid(
                    &format!("{place}.default"),
                    format!(
                        "the parameter {:?} is required, so a default would never be used",
                        parameter.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks an instance's arguments against a class's parameters (its own and inherited, see
/// [`crate::Registry::class_parameters`]): every argument declared and of its type, every required
/// one given; returns the arguments as their types, defaults filled in. Errors name the argument
/// (`arguments.port`).
pub fn validate_arguments(
    parameters: &[Parameter],
    arguments: &Map<String, Value>,
) -> Result<Map<String, Value>, RegistryError> {
    let mut checked = Map::new();
    for (name, value) in arguments {
        let Some(parameter) = parameters.iter().find(|parameter| &parameter.name == name) else {
            let known: Vec<&str> = parameters
                .iter()
                .map(|parameter| parameter.name.as_str())
                .collect();
            return Err(RegistryError::invalid(
                &format!("arguments.{name}"),
                format!(
                    "the class has no parameter {name:?} (it has: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        let value = parameter
            .kind
            .coerce(value)
            .map_err(|reason| RegistryError::invalid(&format!("arguments.{name}"), reason))?;
        checked.insert(name.clone(), value);
    }
    for parameter in parameters {
        if checked.contains_key(&parameter.name) {
            continue;
        }
        if parameter.required {
            return Err(RegistryError::invalid(
                &format!("arguments.{}", parameter.name),
                format!(
                    "the parameter {:?} ({}) is required",
                    parameter.name,
                    parameter.kind.name()
                ),
            ));
        }
        if let Some(default) = &parameter.default {
            checked.insert(parameter.name.clone(), default.clone());
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parameters() -> Vec<Parameter> {
        serde_json::from_value(json!([
            {"name": "port", "type": "port", "description": "the port that must listen", "required": true},
            {"name": "interval", "type": "integer", "default": "60"},
            {"name": "address", "type": "address"},
            {"name": "enabled", "type": "boolean", "default": true},
        ]))
        .unwrap()
    }

    #[test]
    fn the_seeds_text_arguments_are_taken_as_their_types_and_defaults_fill_in() {
        let mut declared = parameters();
        check_parameters(&mut declared, "syntax").unwrap();
        let arguments = json!({"port": "80", "address": "10.0.0.1"});
        let checked = validate_arguments(&declared, arguments.as_object().unwrap()).unwrap();
        assert_eq!(
            Value::Object(checked),
            json!({"port": 80, "address": "10.0.0.1", "interval": 60, "enabled": true})
        );
    }

    #[test]
    fn a_bad_argument_is_named_with_what_was_expected() {
        let mut declared = parameters();
        check_parameters(&mut declared, "syntax").unwrap();
        let error = |arguments: Value| {
            validate_arguments(&declared, arguments.as_object().unwrap())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error(json!({"port": "http"})),
            "arguments.port: expected a port, found \"http\""
        );
        assert_eq!(
            error(json!({"port": 70000})),
            "arguments.port: a port is 1 to 65535, found 70000"
        );
        assert_eq!(
            error(json!({})),
            "arguments.port: the parameter \"port\" (port) is required"
        );
        assert_eq!(
            error(json!({"port": 80, "colour": "red"})),
            "arguments.colour: the class has no parameter \"colour\" (it has: port, interval, address, enabled)"
        );
        assert_eq!(
            error(json!({"port": 80, "address": "10.0.0"})),
            "arguments.address: expected an address, found \"10.0.0\""
        );
    }

    #[test]
    fn declared_parameters_are_checked() {
        let check = |value: Value| {
            let mut declared: Vec<Parameter> = serde_json::from_value(value).unwrap();
            check_parameters(&mut declared, "syntax").map_err(|error| error.to_string())
        };
        assert_eq!(
            check(json!([{"name": "port", "type": "port", "default": 0}])),
            Err("syntax[0].default: a port is 1 to 65535, found 0".to_owned())
        );
        assert_eq!(
            check(json!([{"name": "a", "type": "string"}, {"name": "a", "type": "integer"}])),
            Err("syntax[1].name: the parameter \"a\" is declared twice".to_owned())
        );
        assert_eq!(
            check(json!([{"name": "a b", "type": "string"}])),
            Err(
                "syntax[0].name: use 1 to 64 letters, digits, '_', '-' or '.', found \"a b\""
                    .to_owned()
            )
        );
        assert!(
            check(json!([{"name": "a", "type": "string", "required": true, "default": "x"}]))
                .unwrap_err()
                .contains("required")
        );
        assert!(
            serde_json::from_value::<Vec<Parameter>>(json!([{"name": "a", "type": "colour"}]))
                .is_err()
        );
    }
}
