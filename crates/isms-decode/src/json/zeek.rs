//! Zeek JSON log records (one per line, as Zeek writes with `LogAscii::use_json` or the JSON
//! streaming package): `{"_path": "ssh", "ts": ..., "uid": ..., "id.orig_h": ..., ...}`.
//!
//! Which log a record is comes from `_path` when present, else from its keys. Authentication
//! outcomes Zeek observed are category `authentication` with `details.result`: ssh
//! (`auth_success`), ntlm (`success`), kerberos (`success`), rdp (`result` Success or a failure
//! reason) and ftp (`PASS` answered 230 or 530). A record without an outcome is `network`; notices
//! are `ids`.
use serde_json::{Map, Value, json};

use super::{
    address_value, clean_key, clean_value, endpoint, flow_text, summary, text_of, utc_time,
};

/// Whether `object` is a Zeek log record.
pub(super) fn recognizes(object: &Map<String, Value>) -> bool {
    object.contains_key("ts")
        && (["_path", "uid", "id.orig_h", "fuid", "fingerprint"]
            .iter()
            .any(|key| object.contains_key(*key))
            || object.get("id").is_some_and(Value::is_object)
            || object.contains_key("host")
                && (object.contains_key("port_num") || object.contains_key("software_type")))
}

/// The log a record belongs to.
fn log_name(object: &Map<String, Value>) -> String {
    if let Some(path) = object.get("_path").and_then(Value::as_str) {
        return path.to_owned();
    }
    let has = |key: &str| object.contains_key(key);
    let name = if has("auth_success") || has("host_key") {
        "ssh"
    } else if has("query") && has("qtype") {
        "dns"
    } else if has("request_type") && has("service") {
        "kerberos"
    } else if has("security_protocol") || has("cookie") {
        "rdp"
    } else if has("server_nb_computer_name") || has("domainname") && has("success") {
        "ntlm"
    } else if has("named_pipe") || has("endpoint") && has("operation") {
        "dce_rpc"
    } else if has("analyzer") && has("failure_reason") {
        "dpd"
    } else if has("note") {
        "notice"
    } else if has("reply_code") {
        "ftp"
    } else if has("facility") && has("message") {
        "syslog"
    } else if has("share_type") {
        "smb_mapping"
    } else if object
        .get("action")
        .and_then(Value::as_str)
        .is_some_and(|action| action.starts_with("SMB::"))
    {
        "smb_files"
    } else if has("fingerprint") || has("certificate.subject") {
        "x509"
    } else if has("software_type") {
        "software"
    } else if has("port_num") {
        "known_services"
    } else if has("conn_state") || has("history") {
        "conn"
    } else if has("method") && has("uri") {
        "http"
    } else if has("server_name") || has("cipher") {
        "ssl"
    } else if has("mime_type") || has("fuid") {
        "files"
    } else {
        "zeek"
    };
    name.to_owned()
}

/// The connection's ends, flattened (`id.orig_h`) or nested (`id: {orig_h}`).
fn connection_field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .get(&format!("id.{name}"))
        .or_else(|| object.get("id")?.as_object()?.get(name))
}

/// The raw MozDef event of a Zeek record.
pub(super) fn decode(object: &Map<String, Value>) -> Value {
    let log = log_name(object);
    let mut details = Map::new();
    for (key, value) in object {
        let name = match key.as_str() {
            "ts" => continue,
            "id.orig_h" => {
                details.insert("sourceipaddress".into(), address_value(value));
                continue;
            }
            "id.resp_h" => {
                details.insert("destinationipaddress".into(), address_value(value));
                continue;
            }
            "id.orig_p" => "sourceport".to_owned(),
            "id.resp_p" => "destinationport".to_owned(),
            "id" if value.is_object() => {
                for (part, name) in [
                    ("orig_h", "sourceipaddress"),
                    ("orig_p", "sourceport"),
                    ("resp_h", "destinationipaddress"),
                    ("resp_p", "destinationport"),
                ] {
                    if let Some(value) = value.get(part) {
                        details.insert(name.into(), address_value(value));
                    }
                }
                continue;
            }
            // `result` and `action` mean what the decoders say (success/failure, a verb): rdp's
            // `result` and smb_files' `action` keep their log's name in front.
            "result" | "action" => clean_key(&format!("{log}_{key}")),
            other => clean_key(other),
        };
        details.insert(name, clean_value(value, 1));
    }
    details.insert("zeeklog".into(), Value::String(log.clone()));
    let outcome = authentication_outcome(&log, object);
    let category = match (&outcome, log.as_str()) {
        (Some(_), _) => "authentication",
        (None, "notice") => "ids",
        _ => "network",
    };
    if let Some((result, username)) = &outcome {
        details.insert("result".into(), Value::String((*result).to_owned()));
        if let Some(username) = username.as_deref().filter(|name| !name.is_empty()) {
            details
                .entry("username")
                .or_insert_with(|| Value::String(username.to_owned()));
        }
    }
    let flow = flow_text(
        endpoint(
            connection_field(object, "orig_h"),
            connection_field(object, "orig_p"),
        ),
        endpoint(
            connection_field(object, "resp_h"),
            connection_field(object, "resp_p"),
        ),
    );
    let head = format!("zeek {log}:");
    let summary = summary(&head, &[describe(&log, object), flow]);
    let mut event = json!({
        "summary": summary,
        "category": category,
        "severity": if log == "notice" { "WARNING" } else { "INFO" },
        "processname": "zeek",
        "tags": ["zeek", format!("zeek:{log}")],
    });
    if let Value::Object(map) = &mut event {
        if let Some(time) = object.get("ts").and_then(utc_time) {
            map.insert("utctimestamp".into(), Value::String(time));
        } else if let Some(raw) = object.get("ts") {
            details.insert("ts".into(), raw.clone());
        }
        map.insert("details".into(), Value::Object(details));
    }
    event
}

/// `success` / `failure` and the user name, for records that carry an authentication outcome.
fn authentication_outcome(
    log: &str,
    object: &Map<String, Value>,
) -> Option<(&'static str, Option<String>)> {
    let outcome = |success: bool| if success { "success" } else { "failure" };
    let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
    match log {
        "ssh" => Some((outcome(object.get("auth_success")?.as_bool()?), None)),
        "ntlm" => Some((outcome(object.get("success")?.as_bool()?), text("username"))),
        "kerberos" => {
            let success = object.get("success")?.as_bool()?;
            let client = text("client").map(|client| {
                client
                    .split_once('/')
                    .map_or(client.clone(), |(user, _)| user.to_owned())
            });
            Some((outcome(success), client))
        }
        "rdp" => {
            let result = object.get("result")?.as_str()?;
            let lower = result.to_ascii_lowercase();
            let success = if lower == "success" {
                true
            } else if ["fail", "denied", "expired", "invalid", "locked"]
                .iter()
                .any(|word| lower.contains(word))
            {
                false
            } else {
                return None;
            };
            Some((outcome(success), text("cookie")))
        }
        "ftp" => {
            let command = object.get("command")?.as_str()?;
            if !command.eq_ignore_ascii_case("PASS") {
                return None;
            }
            let success = match object.get("reply_code")?.as_u64()? {
                230 => true,
                530 => false,
                _ => return None,
            };
            Some((outcome(success), text("user")))
        }
        _ => None,
    }
}

/// The log-specific words of the summary.
fn describe(log: &str, object: &Map<String, Value>) -> String {
    let field = |key: &str| object.get(key).map(text_of).unwrap_or_default();
    let pairs = |keys: &[&str]| -> String {
        keys.iter()
            .filter_map(|key| {
                let value = object.get(*key)?;
                (!value.is_null()).then(|| format!("{key}={}", text_of(value)))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    match log {
        "ssh" => pairs(&["auth_success", "auth_attempts", "client", "server"]),
        "dns" => format!(
            "{} {} {}",
            field("query"),
            field("qtype_name"),
            field("rcode_name")
        ),
        "ntlm" => pairs(&["username", "domainname", "success", "status"]),
        "kerberos" => pairs(&["request_type", "client", "service", "success", "error_msg"]),
        "rdp" => pairs(&["cookie", "result", "security_protocol"]),
        "ftp" => format!(
            "{} {} {} {}",
            field("user"),
            field("command"),
            field("reply_code"),
            field("reply_msg")
        ),
        "notice" => format!("{}: {}", field("note"), field("msg")),
        "x509" => field("certificate.subject"),
        "software" => format!(
            "{} {} {} on {}",
            field("software_type"),
            field("name"),
            field("unparsed_version"),
            field("host")
        ),
        "known_services" => format!(
            "{}:{} {}",
            field("host"),
            field("port_num"),
            field("service")
        ),
        "syslog" => format!(
            "{}.{}: {}",
            field("facility"),
            field("severity"),
            field("message")
        ),
        "smb_mapping" => format!("{} {}", field("path"), field("share_type")),
        "smb_files" => format!("{} {}", field("action"), field("name")),
        "dce_rpc" => format!("{} {}", field("endpoint"), field("operation")),
        "dpd" => format!("{}: {}", field("analyzer"), field("failure_reason")),
        "conn" => format!(
            "{} {} {}",
            field("proto"),
            field("service"),
            field("conn_state")
        ),
        "http" => format!(
            "{} {}{} {}",
            field("method"),
            field("host"),
            field("uri"),
            field("status_code")
        ),
        "ssl" => format!("{} {}", field("server_name"), field("version")),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    fn decode(record: Value) -> Value {
        let Value::Object(map) = record else {
            panic!("not an object")
        };
        assert!(super::recognizes(&map));
        super::decode(&map)
    }

    #[test]
    fn ssh_records_with_an_outcome_are_authentication() {
        let event = decode(json!({
            "_path": "ssh", "ts": 1700000000.5, "uid": "Cabc",
            "id.orig_h": "198.51.100.3", "id.orig_p": 50000, "id.resp_h": "10.0.0.3", "id.resp_p": 22,
            "auth_success": false, "auth_attempts": 6, "client": "SSH-2.0-libssh"
        }));
        assert_eq!(event["category"], "authentication");
        assert_eq!(event["details"]["result"], "failure");
        assert_eq!(event["details"]["sourceipaddress"], "198.51.100.3");
        assert_eq!(event["details"]["destinationport"], 22);
        assert_eq!(event["utctimestamp"], "2023-11-14T22:13:20.500000+00:00");
        assert!(
            event["summary"]
                .as_str()
                .unwrap()
                .starts_with("zeek ssh: auth_success=false")
        );
    }

    #[test]
    fn records_without_path_are_recognized_by_their_keys() {
        let event = decode(json!({
            "ts": "2026-01-01T00:00:00Z", "uid": "C1",
            "id": {"orig_h": "198.51.100.4", "orig_p": 1, "resp_h": "10.0.0.4", "resp_p": 88},
            "request_type": "AS", "client": "mallory/EXAMPLE", "service": "krbtgt/EXAMPLE",
            "success": false, "error_msg": "KDC_ERR_PREAUTH_FAILED"
        }));
        assert_eq!(event["details"]["zeeklog"], "kerberos");
        assert_eq!(event["details"]["username"], "mallory");
        assert_eq!(event["details"]["result"], "failure");
        assert_eq!(event["details"]["sourceipaddress"], "198.51.100.4");
        let plain = decode(
            json!({"ts": 1.0, "uid": "C2", "id.orig_h": "10.0.0.1", "query": "a.test", "qtype": 1}),
        );
        assert_eq!(plain["category"], "network");
    }
}
