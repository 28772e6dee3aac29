//! The registry over a real SQLite store: the seed's operations, names unique among live rows,
//! soft delete carried down, references to deleted or missing records, and class inheritance.
use std::sync::Arc;

use isms_registry::{
    ClassChanges, ClassSpec, GeneratorChanges, GeneratorClaims, GeneratorSpec, GroupSpec, Registry,
    RegistryError,
};
use isms_store::Store;
use isms_store::sqlite::{SqliteOptions, SqliteStore};
use serde_json::json;

async fn registry() -> (Registry, Arc<dyn Store>, tempfile::TempDir) {
    let directory = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::new(directory.path().join("isms.db")))
            .await
            .unwrap(),
    );
    (Registry::new(store.clone()), store, directory)
}

fn hids() -> GeneratorSpec {
    GeneratorSpec {
        name: "HIDS".into(),
        author: "admin".into(),
        ip: Some("127.0.0.1".into()),
        ..GeneratorSpec::default()
    }
}

fn class(name: &str, group: &str, parent: Option<&str>, syntax: serde_json::Value) -> ClassSpec {
    ClassSpec {
        name: name.into(),
        description: format!("{name} alerts"),
        syntax: serde_json::from_value(syntax).unwrap(),
        parent: parent.map(str::to_owned),
        group: group.into(),
        ..ClassSpec::default()
    }
}

/// Registers HIDS and its group `network`.
async fn hids_with_network_group(registry: &Registry) {
    registry.register_generator(hids(), None).await.unwrap();
    registry
        .register_group(
            "HIDS",
            GroupSpec {
                name: "network".into(),
                description: String::new(),
            },
        )
        .await
        .unwrap();
}

/// A key as the collector records it: its id, and a signing key told apart by the id.
fn recorded_key(key_id: &str) -> isms_registry::RecordedKey {
    isms_registry::RecordedKey {
        key_id: key_id.to_owned(),
        push_signing_key: format!("signing-{key_id}"),
    }
}

/// The error's seed status and HTTP code, and its message.
fn refused<T: std::fmt::Debug>(result: Result<T, RegistryError>) -> (String, u16, String) {
    let error = result.expect_err("refused");
    (error.status(), error.http_code(), error.to_string())
}

#[tokio::test]
async fn generators_register_once_verify_update_and_delete_softly() {
    let (registry, store, _directory) = registry().await;
    let generator = registry
        .register_generator(hids(), Some(recorded_key("key-1")))
        .await
        .unwrap();
    assert_eq!(generator.name, "HIDS");
    assert!(generator.id > 0);
    let (status, code, _) = refused(registry.register_generator(hids(), None).await);
    assert_eq!((status.as_str(), code), ("Generator already exists", 409));

    registry
        .verify_generator(
            "HIDS",
            GeneratorClaims {
                author: Some("admin".into()),
                ip: Some("127.0.0.1".into()),
            },
        )
        .await
        .unwrap();
    let (status, code, message) = refused(
        registry
            .verify_generator(
                "HIDS",
                GeneratorClaims {
                    author: Some("mallory".into()),
                    ip: Some("10.0.0.9".into()),
                },
            )
            .await,
    );
    assert_eq!((status.as_str(), code), ("Generator does not match", 409));
    assert_eq!(
        message,
        "the generator \"HIDS\" is registered with another author, ip"
    );

    let updated = registry
        .update_generator(
            "HIDS",
            GeneratorChanges {
                author: Some("secteam".into()),
                bind: Some("10.0.0.0/8".into()),
                ..GeneratorChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.author, "secteam");
    assert!(updated.address_allowed("10.1.2.3".parse().unwrap()));
    assert!(!updated.address_allowed("192.0.2.1".parse().unwrap()));
    let (_, code, message) = refused(
        registry
            .update_generator(
                "HIDS",
                GeneratorChanges {
                    bind: Some("10.0.0.1/8".into()),
                    ..GeneratorChanges::default()
                },
            )
            .await,
    );
    assert_eq!(code, 422);
    assert!(message.starts_with("bind: expected"), "{message}");
    assert_eq!(registry.generator("HIDS").await.unwrap().author, "secteam");

    assert_eq!(
        registry
            .generator_with_key("key-1")
            .await
            .unwrap()
            .unwrap()
            .name,
        "HIDS"
    );
    let (_, previous) = registry
        .set_generator_key("HIDS", Some(recorded_key("key-2")))
        .await
        .unwrap();
    assert_eq!(previous.as_deref(), Some("key-1"));
    assert!(
        registry
            .generator_with_key("key-1")
            .await
            .unwrap()
            .is_none()
    );

    registry.delete_generator("HIDS").await.unwrap();
    let (status, code, _) = refused(registry.generator("HIDS").await);
    assert_eq!((status.as_str(), code), ("Generator not found", 404));
    assert!(
        registry
            .generator_with_key("key-2")
            .await
            .unwrap()
            .is_none()
    );
    // Kept as a deleted row; the name is free again.
    let rows = store.records("generator").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].deleted_micros.is_some());
    registry.register_generator(hids(), None).await.unwrap();
    assert_eq!(registry.generators().await.unwrap().len(), 1);
}

#[tokio::test]
async fn bad_generator_fields_are_named() {
    let (registry, _store, _directory) = registry().await;
    let cases = [
        (
            GeneratorSpec {
                name: "H I D S".into(),
                ..hids()
            },
            "name: use 1 to 64 letters, digits, '_', '-' or '.', found \"H I D S\"",
        ),
        (
            GeneratorSpec {
                author: " ".into(),
                ..hids()
            },
            "author: the author must be given",
        ),
        (
            GeneratorSpec {
                ip: Some("300.1.1.1".into()),
                ..hids()
            },
            "ip: \"300.1.1.1\" is not an IP address",
        ),
        (
            GeneratorSpec {
                ip: None,
                bind: Some("registered".into()),
                ..hids()
            },
            "bind: \"registered\" binds the key to the generator's ip, and it has none",
        ),
        (
            GeneratorSpec {
                expected_interval_seconds: Some(0),
                ..hids()
            },
            "expected_interval_seconds: 1 second to 7 days, found 0",
        ),
    ];
    for (spec, expected) in cases {
        let (status, code, message) = refused(registry.register_generator(spec, None).await);
        assert_eq!((status.as_str(), code), ("Invalid request", 422));
        assert_eq!(message, expected);
    }
    assert!(registry.generators().await.unwrap().is_empty());
}

#[tokio::test]
async fn groups_and_classes_belong_to_live_records_and_deletion_carries_down() {
    let (registry, _store, _directory) = registry().await;
    registry.register_generator(hids(), None).await.unwrap();
    registry
        .register_generator(
            GeneratorSpec {
                name: "NIDS".into(),
                ..hids()
            },
            None,
        )
        .await
        .unwrap();
    let group = GroupSpec {
        name: "network".into(),
        description: "ports and connections".into(),
    };
    registry
        .register_group("HIDS", group.clone())
        .await
        .unwrap();
    // The same group name under another generator is another group.
    registry
        .register_group("NIDS", group.clone())
        .await
        .unwrap();
    let (status, code, _) = refused(registry.register_group("HIDS", group.clone()).await);
    assert_eq!((status.as_str(), code), ("Group already exists", 409));
    let (status, code, _) = refused(registry.register_group("nobody", group.clone()).await);
    assert_eq!((status.as_str(), code), ("Generator not found", 404));

    registry
        .register_class(
            "HIDS",
            class(
                "TCP_MISSING",
                "network",
                None,
                json!([{"name": "port", "type": "port", "required": true}]),
            ),
        )
        .await
        .unwrap();
    let (status, code, message) = refused(
        registry
            .register_class("HIDS", class("UDP_MISSING", "disks", None, json!([])))
            .await,
    );
    assert_eq!((status.as_str(), code), ("Invalid request", 422));
    assert_eq!(
        message,
        "group: no group named \"disks\" in generator \"HIDS\""
    );

    registry.delete_group("HIDS", "network").await.unwrap();
    // Its class went with it; registering into it is refused as deleted.
    let (status, code, _) = refused(registry.class("HIDS", "TCP_MISSING").await);
    assert_eq!((status.as_str(), code), ("Class not found", 404));
    let (status, code, message) = refused(
        registry
            .register_class("HIDS", class("UDP_MISSING", "network", None, json!([])))
            .await,
    );
    assert_eq!((status.as_str(), code), ("Group is deleted", 409));
    assert_eq!(message, "the group \"network\" is deleted");
    // NIDS's group of the same name is untouched.
    registry.group("NIDS", "network").await.unwrap();
    registry
        .register_class("NIDS", class("SCAN", "network", None, json!([])))
        .await
        .unwrap();
    registry.delete_generator("NIDS").await.unwrap();
    let (status, _, _) = refused(registry.classes("NIDS").await);
    assert_eq!(status, "Generator not found");
    registry
        .register_generator(
            GeneratorSpec {
                name: "NIDS".into(),
                ..hids()
            },
            None,
        )
        .await
        .unwrap();
    assert!(registry.groups("NIDS").await.unwrap().is_empty());
    assert!(registry.classes("NIDS").await.unwrap().is_empty());
}

#[tokio::test]
async fn classes_inherit_their_parents_parameters_and_parents_cannot_cycle() {
    let (registry, _store, _directory) = registry().await;
    hids_with_network_group(&registry).await;
    registry
        .register_class(
            "HIDS",
            class(
                "PORT",
                "network",
                None,
                json!([
                    {"name": "port", "type": "port", "required": true},
                    {"name": "interval", "type": "integer", "default": 60}
                ]),
            ),
        )
        .await
        .unwrap();
    registry
        .register_class(
            "HIDS",
            class(
                "TCP_MISSING",
                "network",
                Some("PORT"),
                json!([
                    {"name": "interval", "type": "integer", "default": 30},
                    {"name": "address", "type": "address", "default": "127.0.0.1"}
                ]),
            ),
        )
        .await
        .unwrap();
    let parameters = registry
        .class_parameters("HIDS", "TCP_MISSING")
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&parameters).unwrap(),
        json!([
            {"name": "port", "type": "port", "description": "", "required": true},
            {"name": "interval", "type": "integer", "description": "", "required": false, "default": 30},
            {"name": "address", "type": "address", "description": "", "required": false, "default": "127.0.0.1"}
        ])
    );
    // Listed with their parameters from one read: the same as asked one by one.
    let listed = registry.classes_with_parameters("HIDS").await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|(class, parameters)| (class.name.as_str(), parameters.len()))
            .collect::<Vec<_>>(),
        [("PORT", 2), ("TCP_MISSING", 3)]
    );
    assert_eq!(listed[1].1, parameters);
    let checked =
        isms_registry::validate_arguments(&parameters, json!({"port": "80"}).as_object().unwrap())
            .unwrap();
    assert_eq!(
        serde_json::Value::Object(checked),
        json!({"port": 80, "interval": 30, "address": "127.0.0.1"})
    );

    // An unknown parent, a parent that is itself, and a cycle through an update.
    let (status, code, message) = refused(
        registry
            .register_class("HIDS", class("UDP", "network", Some("NOPE"), json!([])))
            .await,
    );
    assert_eq!((status.as_str(), code), ("Invalid request", 422));
    assert_eq!(
        message,
        "parent: no class named \"NOPE\" in generator \"HIDS\""
    );
    let (status, code, _) = refused(
        registry
            .register_class("HIDS", class("SELF", "network", Some("SELF"), json!([])))
            .await,
    );
    assert_eq!((status.as_str(), code), ("Class parent cycle", 422));
    let (status, code, message) = refused(
        registry
            .update_class(
                "HIDS",
                "PORT",
                ClassChanges {
                    parent: Some("TCP_MISSING".into()),
                    ..ClassChanges::default()
                },
            )
            .await,
    );
    assert_eq!((status.as_str(), code), ("Class parent cycle", 422));
    assert_eq!(
        message,
        "parent: the class parents make a cycle: PORT -> TCP_MISSING -> PORT"
    );
    assert_eq!(registry.class("HIDS", "PORT").await.unwrap().parent, None);

    // A parent cannot go while a class inherits from it.
    let (status, code, _) = refused(registry.delete_class("HIDS", "PORT").await);
    assert_eq!((status.as_str(), code), ("Class has children", 409));
    registry.delete_class("HIDS", "TCP_MISSING").await.unwrap();
    registry.delete_class("HIDS", "PORT").await.unwrap();
    assert!(registry.classes("HIDS").await.unwrap().is_empty());
}

#[tokio::test]
async fn instances_are_checked_against_their_class_and_delivered_as_numbered_changes() {
    use isms_registry::{Acknowledgement, InstanceSpec, InstanceState, Profile};
    let (registry, _store, _directory) = registry().await;
    hids_with_network_group(&registry).await;
    registry
        .register_class(
            "HIDS",
            class(
                "TCP_MISSING",
                "network",
                None,
                json!([{"name": "port", "type": "port", "required": true},
                       {"name": "interval", "type": "integer", "default": 60}]),
            ),
        )
        .await
        .unwrap();
    let spec = |id: Option<&str>, arguments: serde_json::Value| InstanceSpec {
        class: "TCP_MISSING".into(),
        id: id.map(str::to_owned),
        arguments: arguments.as_object().unwrap().clone(),
    };
    // The seed's call: instantiate_alert_generator("HIDS", "TCP_MISSING", "12133", {"port": "80"}).
    let first = registry
        .instantiate("HIDS", spec(Some("12133"), json!({"port": "80"})))
        .await
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(first.arguments.clone()),
        json!({"port": 80, "interval": 60})
    );
    assert_eq!((first.version, first.state), (1, InstanceState::Pending));
    let second = registry
        .instantiate("HIDS", spec(None, json!({"port": 443})))
        .await
        .unwrap();
    assert_eq!((second.id.as_str(), second.version), ("12134", 2));
    // Bad arguments, a duplicate id and an unknown class: precise, nothing made.
    let (status, code, message) = refused(
        registry
            .instantiate("HIDS", spec(None, json!({"port": "http"})))
            .await,
    );
    assert_eq!((status.as_str(), code), ("Invalid request", 422));
    assert_eq!(message, "arguments.port: expected a port, found \"http\"");
    let (status, code, _) = refused(
        registry
            .instantiate("HIDS", spec(Some("12133"), json!({"port": 22})))
            .await,
    );
    assert_eq!((status.as_str(), code), ("Instance already exists", 409));
    let (_, code, message) = refused(
        registry
            .instantiate(
                "HIDS",
                InstanceSpec {
                    class: "UDP_MISSING".into(),
                    ..InstanceSpec::default()
                },
            )
            .await,
    );
    assert_eq!(code, 422);
    assert_eq!(
        message,
        "class: no class named \"UDP_MISSING\" in generator \"HIDS\""
    );
    assert_eq!(registry.instances("HIDS").await.unwrap().len(), 2);

    // The generator pulls what changed after what it applied, and acknowledges it.
    let changes = registry.changes("HIDS", 0).await.unwrap();
    assert_eq!(
        changes
            .iter()
            .map(|change| change.version)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    let applied = registry
        .acknowledge(
            "HIDS",
            "12133",
            Acknowledgement {
                version: 1,
                applied: true,
                error: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(applied.state, InstanceState::Applied);
    let failed = registry
        .acknowledge(
            "HIDS",
            "12134",
            Acknowledgement {
                version: 2,
                applied: false,
                error: Some("port 443 is not ours to watch".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(failed.state, InstanceState::Failed);
    assert!(registry.changes("HIDS", 2).await.unwrap().is_empty());

    // A change, a profile request and a removal each come as the next version.
    registry
        .reconfigure_instance(
            "HIDS",
            "12133",
            json!({"port": 8080}).as_object().unwrap().clone(),
        )
        .await
        .unwrap();
    registry.request_profile("HIDS", "12133").await.unwrap();
    registry.remove_instance("HIDS", "12134").await.unwrap();
    let changes = registry.changes("HIDS", 2).await.unwrap();
    assert_eq!(
        changes
            .iter()
            .map(|change| (change.id.as_str(), change.version, change.deleted))
            .collect::<Vec<_>>(),
        [("12133", 4, false), ("12134", 5, true)],
        "the instance's latest version only"
    );
    assert!(changes[0].profile_requested);
    assert_eq!(changes[0].arguments["port"], 8080);
    // An acknowledgement of an older version is refused: the generator pulls again.
    let (_, code, message) = refused(
        registry
            .acknowledge(
                "HIDS",
                "12133",
                Acknowledgement {
                    version: 3,
                    applied: true,
                    error: None,
                },
            )
            .await,
    );
    assert_eq!(code, 422);
    assert!(message.contains("is at version 4, not 3"), "{message}");
    let profiled = registry
        .report_profile(
            "HIDS",
            "12133",
            Profile {
                events_seen: 120,
                alerts_raised: 2,
                last_run: Some("2026-12-01T10:00:00Z".into()),
                errors: 0,
                last_error: None,
                reported_micros: 0,
            },
        )
        .await
        .unwrap();
    assert!(!profiled.profile_requested);
    assert!(profiled.profile.unwrap().reported_micros > 0);

    // A class with live instances stays; deleting the group removes them as changes.
    let (status, code, _) = refused(registry.delete_class("HIDS", "TCP_MISSING").await);
    assert_eq!((status.as_str(), code), ("Class has instances", 409));
    registry.delete_group("HIDS", "network").await.unwrap();
    assert!(registry.instances("HIDS").await.unwrap().is_empty());
    let removed = registry.changes("HIDS", 5).await.unwrap();
    assert_eq!(removed.len(), 1);
    assert!(removed[0].deleted);
    assert_eq!(removed[0].id, "12133");
}

#[tokio::test]
async fn push_urls_are_checked_and_the_signing_key_follows_the_key() {
    let (registry, _store, _directory) = registry().await;
    for (push_url, expected) in [
        (
            "ftp://10.0.0.5/push",
            "expected an http or https URL, found scheme \"ftp\"",
        ),
        (
            "http://user:secret@10.0.0.5/push",
            "credentials do not belong in the URL",
        ),
        ("10.0.0.5:9000/push", "is not a URL"),
        ("unix:/run/push", "expected an http or https URL"),
    ] {
        let spec = GeneratorSpec {
            push_url: Some(push_url.to_owned()),
            ..hids()
        };
        let (status, code, message) = refused(registry.register_generator(spec, None).await);
        assert_eq!(
            (status.as_str(), code),
            ("Invalid request", 422),
            "{push_url}"
        );
        assert!(message.starts_with("push_url: "), "{message}");
        assert!(message.contains(expected), "{push_url}: {message}");
    }
    let long = format!("http://10.0.0.5/{}", "a".repeat(2100));
    let (_, _, message) = refused(
        registry
            .register_generator(
                GeneratorSpec {
                    push_url: Some(long),
                    ..hids()
                },
                None,
            )
            .await,
    );
    assert!(message.contains("at most 2048 bytes"), "{message}");
    assert!(
        registry.generators().await.unwrap().is_empty(),
        "nothing registered"
    );

    let generator = registry
        .register_generator(
            GeneratorSpec {
                push_url: Some("http://10.0.0.5:9000/push".to_owned()),
                ..hids()
            },
            Some(recorded_key("key-1")),
        )
        .await
        .unwrap();
    assert_eq!(generator.push_signing_key.as_deref(), Some("signing-key-1"));
    assert_eq!(generator.public().push_signing_key, None, "never shown");
    let shown = serde_json::to_value(generator.public()).unwrap();
    assert!(shown.get("push_signing_key").is_none(), "{shown}");

    let (rotated, _) = registry
        .set_generator_key("HIDS", Some(recorded_key("key-2")))
        .await
        .unwrap();
    assert_eq!(rotated.push_signing_key.as_deref(), Some("signing-key-2"));
    let (revoked, _) = registry.set_generator_key("HIDS", None).await.unwrap();
    assert_eq!((revoked.key_id, revoked.push_signing_key), (None, None));

    let stopped = registry
        .update_generator(
            "HIDS",
            GeneratorChanges {
                push_url: Some(String::new()),
                ..GeneratorChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(stopped.push_url, None, "\"\" stops pushes");
}

#[tokio::test]
async fn the_last_contact_written_down_only_moves_forward() {
    let (registry, _store, _directory) = registry().await;
    registry.register_generator(hids(), None).await.unwrap();
    registry.note_contact("HIDS", 2_000).await.unwrap();
    registry.note_contact("HIDS", 1_000).await.unwrap();
    assert_eq!(
        registry
            .generator("HIDS")
            .await
            .unwrap()
            .last_contact_micros,
        Some(2_000)
    );
    let (status, code, _) = refused(registry.note_contact("NIDS", 1).await);
    assert_eq!((status.as_str(), code), ("Generator not found", 404));
}
