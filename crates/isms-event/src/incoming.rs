//! Incoming JSON parsed into `serde_json::Value`, with each object built in one go.
//!
//! serde_json's own `Value` inserts every member into its map as it reads it: a search of the map and
//! a shift of its entries per key. [`IncomingValue`] collects an object's members in a list and builds
//! the map from it at the end (sorted once, then filled in order). The result is the same map: for a
//! key given twice the later member wins, as with serde_json. Ingestion parses every event this way.
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON value parsed from incoming data; the same `Value` serde_json makes, made with less work.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingValue(pub Value);

impl<'de> Deserialize<'de> for IncomingValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<IncomingValue, D::Error> {
        deserializer
            .deserialize_any(IncomingVisitor)
            .map(IncomingValue)
    }
}

struct IncomingVisitor;

impl<'de> Visitor<'de> for IncomingVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        IncomingValue::deserialize(deserializer).map(|IncomingValue(value)| value)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(sequence.size_hint().unwrap_or(0).min(1024));
        while let Some(IncomingValue(item)) = sequence.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut object: A) -> Result<Value, A::Error> {
        let mut members: Vec<(String, Value)> = Vec::with_capacity(8);
        while let Some((key, IncomingValue(value))) =
            object.next_entry::<String, IncomingValue>()?
        {
            members.push((key, value));
        }
        // A stable sort keeps repeated keys in the order read; building keeps the last of them.
        Ok(Value::Object(
            members.into_iter().collect::<Map<String, Value>>(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn both(text: &str) -> (Value, Value) {
        let ours: IncomingValue = serde_json::from_str(text).expect("parses");
        let theirs: Value = serde_json::from_str(text).expect("parses");
        (ours.0, theirs)
    }

    #[test]
    fn repeated_keys_keep_the_last_member_as_serde_json_does() {
        for text in [
            r#"{"a": 1, "a": 2}"#,
            r#"{"b": 1, "a": 2, "b": 3, "a": 4, "c": {"x": 1, "x": [1, 2]}}"#,
            r#"{"z": 0, "y": 1, "x": 2, "w": 3, "v": 4, "u": 5, "t": 6, "s": 7, "r": 8, "q": 9, "p": 10, "o": 11, "n": 12, "z": 13}"#,
        ] {
            let (ours, theirs) = both(text);
            assert_eq!(ours, theirs, "{text}");
        }
    }

    #[test]
    fn every_kind_of_value() {
        let text = r#"[null, true, false, 0, -1, 18446744073709551615, -9223372036854775808, 1.5, -2e-7,
            "", "é\u00e9\n", [], {}, {"k": {"nested": [1, {"deeper": null}]}}]"#;
        let (ours, theirs) = both(text);
        assert_eq!(ours, theirs);
        assert!(serde_json::from_str::<IncomingValue>("{").is_err());
        assert!(serde_json::from_str::<IncomingValue>("[1,]").is_err());
    }

    /// JSON text, objects often repeating a key (serde_json's `Value` could not hold those).
    fn json_text() -> impl Strategy<Value = String> {
        let key = prop_oneof![Just("a".to_owned()), Just("b".to_owned()), "[a-z]{0,3}"];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,8}".prop_map(Value::String),
        ]
        .prop_map(|value| value.to_string());
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec((key.clone(), inner), 0..12).prop_map(|members| {
                    let members: Vec<String> = members
                        .iter()
                        .map(|(key, value)| format!("{}: {value}", Value::String(key.clone())))
                        .collect();
                    format!("{{{}}}", members.join(",\n"))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn parses_to_the_value_serde_json_makes(text in json_text()) {
            let (ours, theirs) = both(&text);
            prop_assert_eq!(ours, theirs);
        }
    }
}
