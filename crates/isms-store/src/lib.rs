//! The event store: where events are kept durably and found again.
//!
//! One [`Store`] trait, several backends. The embedded default is [`sqlite::SqliteStore`] (one file in the
//! data directory, WAL); a PostgreSQL backend is planned and must pass the same [`conformance`] suite, so
//! nothing in this trait is SQLite-specific: times are `i64` microseconds, predicates are the shared IR of
//! `isms-query`, cursors are opaque strings, and keys are stored only as hashes made by the caller.
//!
//! Durability contract: when [`Store::append`] returns `Ok`, the events are committed; a crash after that
//! loses none of them. Sources (HTTP, syslog, AMQP) acknowledge only after `append` returns.
#![deny(missing_docs)]

pub mod conformance;
pub mod sqlite;
pub mod terms;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use isms_event::Event;
use isms_query::ir::{FieldPath, Predicate};
use serde::{Deserialize, Serialize};

/// A boxed future returned by [`Store`] methods (keeps the trait usable as `dyn Store`).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Everything that can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The data directory or database file could not be prepared.
    #[error("cannot open the store at {path}: {reason}")]
    Open {
        /// The path that could not be opened.
        path: String,
        /// Why.
        reason: String,
    },
    /// A cursor given by a client is not one this store produced.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    /// A request was out of bounds (e.g. a histogram with too many buckets).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A key with this live name already exists.
    #[error("a live key named {0:?} already exists")]
    DuplicateKeyName(String),
    /// A live control record of this kind already has this name in its scope.
    #[error("a live {kind} named {name:?} already exists")]
    DuplicateRecordName {
        /// The record's kind (`generator`, `group`, ...).
        kind: String,
        /// The name taken.
        name: String,
    },
    /// The store's writer has stopped (the process is shutting down or the database failed).
    #[error("the store writer has stopped")]
    WriterStopped,
    /// A stored document could not be read back.
    #[error("stored event {seq} is corrupt: {reason}")]
    Corrupt {
        /// The event's sequence number.
        seq: i64,
        /// Why it could not be read.
        reason: String,
    },
    /// The term index's files failed (the events themselves are unaffected).
    #[error("search index: {0}")]
    Index(String),
}

/// Which events a read looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFilter {
    /// The predicate events must satisfy.
    pub predicate: Predicate,
    /// Inclusive lower bound on event time (µs since the epoch).
    pub from_micros: Option<i64>,
    /// Exclusive upper bound on event time (µs since the epoch).
    pub to_micros: Option<i64>,
}

impl EventFilter {
    /// All events.
    pub fn everything() -> EventFilter {
        EventFilter {
            predicate: Predicate::All,
            from_micros: None,
            to_micros: None,
        }
    }

    /// Events matching `predicate` at any time.
    pub fn matching(predicate: Predicate) -> EventFilter {
        EventFilter {
            predicate,
            from_micros: None,
            to_micros: None,
        }
    }
}

/// Order of search results, by event time then arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// Newest first (the default).
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

/// A page of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// Which events.
    pub filter: EventFilter,
    /// At most this many events.
    pub limit: usize,
    /// Continue after the last event of a previous page.
    pub cursor: Option<String>,
    /// Order.
    pub sort: SortOrder,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchPage {
    /// The events, as normalized documents.
    pub events: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Pass this back to get the next page; `None` when there are no more events.
    pub next_cursor: Option<String>,
}

/// A histogram bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistogramBucket {
    /// Start of the bucket, µs since the epoch.
    pub start_micros: i64,
    /// Events in the bucket.
    pub count: u64,
}

/// A value and how many events hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopValue {
    /// The value's text.
    pub value: String,
    /// Number of events with this value.
    pub count: u64,
}

/// How to bound the store's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionPolicy {
    /// Delete events received longer ago than this many microseconds (`None`: keep).
    pub max_age_micros: Option<i64>,
    /// Delete the oldest events while the store uses more bytes than this (`None`: no bound).
    pub max_bytes: Option<u64>,
}

/// What a retention pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RetentionOutcome {
    /// Events deleted because of their age.
    pub deleted_for_age: u64,
    /// Events deleted to get under the size bound.
    pub deleted_for_size: u64,
}

/// Health and size figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreHealth {
    /// The backend's name (`sqlite`).
    pub backend: String,
    /// Events stored.
    pub events: u64,
    /// Bytes used by the store.
    pub bytes: u64,
}

/// A control-plane record (an alert generator, alert group, alert class, instance): its kind, the
/// scope its name is unique in among live records of the kind ("" for none, a generator's id for
/// what belongs to one), and its fields as a JSON document the registry reads and writes. Records
/// are never removed: a deleted one keeps its row with `deleted_micros` set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlRecord {
    /// Assigned by the store (ignored when inserting).
    pub id: i64,
    /// What it is: `generator`, `group`, `class`, ...
    pub kind: String,
    /// What its name is unique in among live records of its kind.
    pub scope: String,
    /// Its name.
    pub name: String,
    /// Its fields, as the registry writes them.
    pub document: serde_json::Value,
    /// When it was made, µs since the epoch.
    pub created_micros: i64,
    /// When it was last written, µs since the epoch.
    pub updated_micros: i64,
    /// When it was deleted, if it was.
    pub deleted_micros: Option<i64>,
}

/// An API key as stored: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRecord {
    /// Public identifier, also the first part of the key text.
    pub id: String,
    /// Human name (unique among live keys).
    pub name: String,
    /// PHC string of the argon2 hash of the whole key.
    #[serde(skip)]
    pub hash: String,
    /// Creation time, µs since the epoch.
    pub created_micros: i64,
    /// Revocation time, if revoked.
    pub revoked_micros: Option<i64>,
}

/// An event in the form a store writes it: the document's JSON text, its index terms, its id and
/// times. Made by [`EventPreparer`] on the caller's thread, right where the event was built.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    pub(crate) id: [u8; 16],
    pub(crate) utctimestamp: i64,
    pub(crate) receivedtimestamp: i64,
    pub(crate) document: Arc<str>,
    pub(crate) terms: Arc<[u8]>,
}

/// Turns events into [`PreparedEvent`]s: the CPU-heavy part of an append (index terms and JSON text),
/// done by the caller. A source that builds events one by one (a syslog connection) prepares each at
/// once, while its document is still in the cache, and frees the document on the thread that made
/// it (freed on another thread, as when a whole batch was prepared elsewhere, documents cost a third
/// of a syslog message's instructions). Keeps the paths it has seen between events.
#[derive(Default)]
pub struct EventPreparer {
    term_writer: terms::TermWriter,
}

impl EventPreparer {
    /// The event as a store writes it.
    pub fn prepare(&mut self, event: &Event) -> PreparedEvent {
        let id = uuid::Uuid::try_parse(&event.id)
            .map(|uuid| *uuid.as_bytes())
            .unwrap_or_else(|_| {
                // Normalization always makes UUIDs; anything else still gets a stable 16-byte key.
                let hash = blake3::hash(event.id.as_bytes());
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(&hash.as_bytes()[..16]);
                bytes
            });
        let terms = Arc::from(self.term_writer.terms_of(&event.document));
        // What serde_json writes, faster (see `isms_event::object_text`): a tenth of ingestion's CPU
        // went to escaping checks.
        let document = isms_event::object_text(&event.document);
        PreparedEvent {
            id,
            utctimestamp: event.utctimestamp_micros,
            receivedtimestamp: event.receivedtimestamp_micros,
            document: Arc::from(document),
            terms,
        }
    }
}

/// A stored event with its sequence number, as [`Store::events_after`] reads it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Position in the store: increasing in commit order, never reused.
    pub seq: i64,
    /// The event as stored.
    pub document: serde_json::Map<String, serde_json::Value>,
}

/// The storage interface every backend implements.
pub trait Store: Send + Sync + 'static {
    /// Commits the events durably; returns only once they are committed.
    fn append(&self, events: Vec<Event>) -> StoreFuture<'_, ()>;
    /// [`Store::append`] for events the caller prepared ([`EventPreparer`]).
    fn append_prepared(&self, events: Vec<PreparedEvent>) -> StoreFuture<'_, ()>;
    /// One page of events matching a filter.
    fn search<'a>(&'a self, request: &'a SearchRequest) -> StoreFuture<'a, SearchPage>;
    /// Number of events matching a filter.
    fn count<'a>(&'a self, filter: &'a EventFilter) -> StoreFuture<'a, u64>;
    /// Matching events per time bucket of `interval_micros`, buckets aligned to the epoch, empty buckets omitted.
    fn histogram<'a>(
        &'a self,
        filter: &'a EventFilter,
        interval_micros: i64,
    ) -> StoreFuture<'a, Vec<HistogramBucket>>;
    /// The `limit` most frequent values of a field among matching events.
    fn top_values<'a>(
        &'a self,
        filter: &'a EventFilter,
        field: &'a FieldPath,
        limit: usize,
    ) -> StoreFuture<'a, Vec<TopValue>>;
    /// One event by id.
    fn get_event<'a>(
        &'a self,
        id: &'a str,
    ) -> StoreFuture<'a, Option<serde_json::Map<String, serde_json::Value>>>;
    /// Checks the store answers and reports its size.
    fn health(&self) -> StoreFuture<'_, StoreHealth>;
    /// Deletes what the policy says must go, oldest first.
    fn apply_retention(&self, policy: RetentionPolicy) -> StoreFuture<'_, RetentionOutcome>;
    /// Stores a new key record.
    fn insert_key(&self, record: KeyRecord) -> StoreFuture<'_, ()>;
    /// All keys, live and revoked, oldest first.
    fn list_keys(&self) -> StoreFuture<'_, Vec<KeyRecord>>;
    /// A key by its public id.
    fn key_by_id<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>>;
    /// Revokes the live key with this id or name; returns how many were revoked (0 or 1).
    fn revoke_key<'a>(&'a self, id_or_name: &'a str, at_micros: i64) -> StoreFuture<'a, u64>;
    /// Stores a new control record; returns its id. A live record of the same kind, scope and name
    /// is [`StoreError::DuplicateRecordName`].
    fn insert_record(&self, record: ControlRecord) -> StoreFuture<'_, i64>;
    /// Rewrites the record with `record.id` and `record.kind` (scope, name, document, updated,
    /// deleted); false when there is none. A name taken by another live record is
    /// [`StoreError::DuplicateRecordName`].
    fn update_record(&self, record: ControlRecord) -> StoreFuture<'_, bool>;
    /// Every record of a kind, live and deleted, in the order they were made.
    fn records<'a>(&'a self, kind: &'a str) -> StoreFuture<'a, Vec<ControlRecord>>;
    /// Up to `limit` stored events with a seq above `after_seq`, in seq (commit) order: how the
    /// detection engine follows the store, so that every committed event is seen once, across
    /// restarts too.
    fn events_after(&self, after_seq: i64, limit: usize) -> StoreFuture<'_, Vec<StoredEvent>>;
    /// The highest seq committed so far, updated after every commit (0 for an empty store), to
    /// wake whoever follows the store.
    fn committed_seq(&self) -> tokio::sync::watch::Receiver<i64>;
}
