//! The search index file is rebuilt from the events whenever it is behind them: lost entirely (deleted,
//! or a power cut took its last commits), or from a store written before the indexes had a file of
//! their own. Searches through the index must then find every stored event again.
use std::path::Path;
use std::time::Duration;

use isms_event::{Origin, normalize};
use isms_store::sqlite::{PlanChoice, SqliteOptions, SqliteStore};
use isms_store::{EventFilter, Store};
use serde_json::json;

fn events(range: std::ops::Range<u32>) -> Vec<isms_event::Event> {
    let origin = Origin {
        peer: None,
        endpoint: "test".into(),
        key_name: None,
    };
    range
        .map(|n| {
            normalize(
                json!({
                    "summary": format!("login failed for user{n} marker{}", n % 7),
                    "details": {"username": format!("user{n}"), "bucket": n % 7},
                }),
                &origin,
                jiff::Timestamp::now(),
            )
            .expect("valid event")
        })
        .collect()
}

async fn count(store: &SqliteStore, query: &str) -> u64 {
    let filter = EventFilter {
        predicate: isms_query::parser::parse(query).expect("query"),
        from_micros: None,
        to_micros: None,
    };
    store.count(&filter).await.expect("count")
}

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(SqliteOptions::new(path))
        .await
        .expect("open the store")
}

/// Drops the store and gives its background tasks time to close their connections.
async fn close(store: SqliteStore) {
    drop(store);
    tokio::time::sleep(Duration::from_millis(1200)).await;
}

fn remove_index_files(index_path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = index_path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => panic!("cannot remove {name:?}: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_index_is_rebuilt_from_the_events_at_open() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("isms.db");
    let store = open(&path).await;
    let index_path = store.index_path().to_path_buf();
    assert_ne!(index_path, path);
    store.append(events(0..700)).await.expect("append");
    store.append(events(700..1000)).await.expect("append");
    close(store).await;

    remove_index_files(&index_path);
    let store = open(&path).await;
    assert!(index_path.exists(), "the index file is created again");
    // Driven plans read only the index for candidates: they find everything only if it was rebuilt.
    store.set_plan_choice(PlanChoice::ForceDriven);
    assert_eq!(count(&store, "details.username:user123").await, 1);
    assert_eq!(count(&store, "details.bucket:3").await, 143);
    assert_eq!(count(&store, "marker3").await, 143);
    assert_eq!(count(&store, "\"failed for user999\"").await, 1);
    assert_eq!(count(&store, "failed").await, 1000);

    // New events continue after the old ones and are indexed too.
    store.append(events(1000..1010)).await.expect("append");
    assert_eq!(count(&store, "failed").await, 1010);
    assert_eq!(count(&store, "details.username:user1005").await, 1);
    close(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_behind_the_events_catches_up_and_sequence_numbers_are_not_reused() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("isms.db");
    let store = open(&path).await;
    let index_path = store.index_path().to_path_buf();
    // Two index batches: the first 100 events, then 200 more (each a term segment of its own).
    store.append(events(0..100)).await.expect("append");
    store.append(events(100..300)).await.expect("append");
    close(store).await;

    // As after a power cut that took the index's last commits: it says it has only the first 100 (the
    // second segment, words and terms, is then past what the index committed, and is discarded at open).
    {
        use sqlx::{ConnectOptions, Connection};
        let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&index_path)
            .connect()
            .await
            .expect("open index file");
        sqlx::query("UPDATE index_state SET value = 100 WHERE key = 'indexed_through'")
            .execute(&mut connection)
            .await
            .expect("rewind");
        connection.close().await.expect("close");
    }

    let store = open(&path).await;
    store.set_plan_choice(PlanChoice::ForceDriven);
    assert_eq!(count(&store, "failed").await, 300);
    assert_eq!(count(&store, "details.username:user250").await, 1);
    store.append(events(300..310)).await.expect("append");
    assert_eq!(count(&store, "failed").await, 310);
    assert_eq!(count(&store, "details.username:user305").await, 1);
    close(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_term_segment_makes_the_store_rebuild_its_indexes() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("isms.db");
    let store = open(&path).await;
    store.append(events(0..400)).await.expect("append");
    store.append(events(400..800)).await.expect("append");
    close(store).await;

    let terms_directory = directory.path().join("isms-terms");
    let mut segments: Vec<_> = std::fs::read_dir(&terms_directory)
        .expect("the term segments live beside the events file")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "seg"))
        .collect();
    segments.sort();
    assert_eq!(segments.len(), 2, "one segment per index batch");
    std::fs::remove_file(&segments[0]).expect("remove the older segment");

    let store = open(&path).await;
    store.set_plan_choice(PlanChoice::ForceDriven);
    assert_eq!(count(&store, "details.username:user5").await, 1);
    assert_eq!(count(&store, "details.bucket:3").await, 114);
    assert_eq!(count(&store, "failed").await, 800);
    store.append(events(800..810)).await.expect("append");
    assert_eq!(count(&store, "details.username:user805").await, 1);
    assert_eq!(count(&store, "failed").await, 810);
    close(store).await;
}
