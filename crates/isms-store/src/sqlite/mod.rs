//! The embedded SQLite backend: the events in `isms.db` (WAL mode), and the search index built from
//! them: segment files in `isms-terms/` (see `segments.rs`) and their progress in `isms-index.db` (see
//! `index.rs`).
//!
//! Writes go through ONE events writer task that owns one connection and commits in groups: concurrent
//! [`Store::append`] calls queue their events, the writer takes everything queued (up to a bound) into a
//! single transaction and commits it (`synchronous = FULL` by default: each commit is fsynced). It then
//! hands the batch to the index writer, which writes its segment and only then answers each
//! caller. The two writers work on consecutive batches at the same time, each on its own core.
//! Reads use a small pool of other connections, which WAL lets run beside the writers; each attaches
//! the index file as the schema `ix` and registers the full-text row test (see `functions.rs`).
//!
//! Sequence numbers (`seq`, the rowid) are assigned by the events writer, so a batch's events go in
//! with multi-row inserts without a round trip per event, and its segment names them directly.
mod functions;
mod index;
mod segments;
mod sql;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use isms_event::Event;
use isms_query::ir::FieldPath;
use serde_json::{Map, Value};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
// Every dynamic statement below is assembled from constant SQL and `?` placeholders; values are bound.
use sqlx::{Arguments, AssertSqlSafe, ConnectOptions, Connection, Row};
use tokio::sync::{mpsc, oneshot};

use crate::{
    ControlRecord, EventFilter, EventPreparer, HistogramBucket, KeyRecord, PreparedEvent,
    RetentionOutcome, RetentionPolicy, SearchPage, SearchRequest, SortOrder, Store, StoreError,
    StoreFuture, StoreHealth, StoredEvent, TopValue,
};
use sql::{CompiledPredicate, Driver, SqlFragment, SqlParam};

/// The schema, in order; `PRAGMA user_version` records how many have been applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_index_in_own_file.sql"),
    include_str!("../../migrations/sqlite/0003_ids_in_term_index.sql"),
    include_str!("../../migrations/sqlite/0004_time_index_by_second.sql"),
    include_str!("../../migrations/sqlite/0005_control_records.sql"),
];

/// The key of the time index `events_by_time` (migration 0004), exactly as SQLite must see it to use
/// the index: the second of an event's time (truncated toward zero, which keeps the order). A read in
/// time order orders by it first, and every time bound is also stated on it (see [`time_bucket`]).
const TIME_BUCKET: &str = "e.utctimestamp / 1000000";

/// The [`TIME_BUCKET`] of a time: Rust's integer division truncates toward zero like SQLite's.
fn time_bucket(micros: i64) -> i64 {
    micros / 1_000_000
}

/// A driver with at most this many candidates is joined from (then sorted).
const SELECTIVE_DRIVER_ROWS: i64 = 10_000;

/// A driver with at most this many candidates filters a walk of the time index; beyond it the
/// matches are common enough that testing each row finds a page sooner than building the set.
const SEMI_JOIN_DRIVER_ROWS: i64 = 200_000;

/// Rows per multi-row INSERT statement (5 parameters each, well under SQLite's variable limit).
const ROWS_PER_INSERT: usize = 1_024;

/// `rows` cut into pieces whose lengths are powers of two up to [`ROWS_PER_INSERT`], longest first.
/// A statement of N rows is prepared once and cached by its text; with batches of every size (syslog
/// appends a few messages at a time) arbitrary N meant hundreds of distinct statements, each parsed
/// anew at about 3 million instructions (a twentieth of a syslog message's cost), while these
/// lengths make eleven.
fn insert_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let length = if rows.len() >= ROWS_PER_INSERT {
            ROWS_PER_INSERT
        } else {
            1 << rows.len().ilog2()
        };
        let (chunk, rest) = rows.split_at(length);
        rows = rest;
        Some(chunk)
    })
}

/// How durable a commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync the WAL at every commit: survives power loss.
    #[default]
    Full,
    /// fsync at checkpoints only: survives a process crash (kill -9), not a power cut.
    Normal,
}

/// How to open a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// The database file (created if missing).
    pub path: PathBuf,
    /// Commit durability.
    pub durability: Durability,
    /// The writer commits at most this many events per transaction.
    pub writer_max_batch_events: usize,
    /// Connections for reads.
    pub read_connections: u32,
}

impl SqliteOptions {
    /// Defaults for a database file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> SqliteOptions {
        SqliteOptions {
            path: path.into(),
            durability: Durability::Full,
            writer_max_batch_events: 20_000,
            read_connections: 4,
        }
    }
}

/// Which plan reads use; tests force each plan to prove they agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PlanChoice {
    /// Pick by the driver's selectivity (the default).
    Automatic = 0,
    /// Always walk the time index and test each row.
    ForceScan = 1,
    /// Always join from the index candidates when there are any.
    ForceDriven = 2,
    /// Always walk the time index keeping rows in the candidate set, when there is one.
    ForceSemiJoin = 3,
}

struct AppendJob {
    events: Vec<PreparedEvent>,
    reply: oneshot::Sender<Result<(), String>>,
}

/// The SQLite store.
pub struct SqliteStore {
    reads: SqlitePool,
    committed: tokio::sync::watch::Receiver<i64>,
    writer: mpsc::Sender<AppendJob>,
    path: PathBuf,
    index_path: PathBuf,
    terms: Arc<segments::TermIndex>,
    plan_choice: Arc<AtomicU8>,
}

fn open_error(path: &Path, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database and starts the writer task.
    pub async fn open(options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = options
            .path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| open_error(parent, error))?;
        }
        let connect_options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|error| open_error(&options.path, error))?
            .filename(&options.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match options.durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(10))
            // Must precede the first table: lets retention hand freed pages back to the file system.
            .pragma("auto_vacuum", "incremental")
            // 8 MB of page cache per reading connection; the writer raises its own (below). The OS
            // page cache holds the rest of the file, so this bounds memory rather than speed.
            .pragma("cache_size", "-8000")
            // Temporary sort and GROUP BY trees stay in files (cached by the OS): a facet over a
            // field with millions of distinct values must not be able to fill the RAM.
            .pragma("temp_store", "file")
            .statement_cache_capacity(64)
            .with_regexp();
        let index_path = index::index_path_for(&options.path);
        let (sender, receiver) = mpsc::channel(1024);
        let sender_liveness = sender.downgrade();
        let mut writer_connection = connect_options
            .connect()
            .await
            .map_err(|error| open_error(&options.path, error))?;
        apply_migrations(&mut writer_connection, &options.path, MIGRATIONS).await?;
        prepare_writer_connection(&mut writer_connection).await?;
        let checkpoint_connection = connect_options
            .connect()
            .await
            .map_err(|error| open_error(&options.path, error))?;
        tokio::spawn(checkpoint_loop(
            checkpoint_connection,
            sender_liveness.clone(),
        ));

        // The index file: never fsynced per commit (it is rebuilt from the events when behind).
        let index_options = connect_options
            .clone()
            .filename(&index_path)
            .synchronous(SqliteSynchronous::Normal);
        let mut index_connection = index_options
            .connect()
            .await
            .map_err(|error| open_error(&index_path, error))?;
        index::migrate_index(&mut index_connection, &index_path).await?;
        prepare_writer_connection(&mut index_connection).await?;
        sqlx::query("ATTACH DATABASE ? AS ev")
            .bind(options.path.to_string_lossy().into_owned())
            .execute(&mut index_connection)
            .await?;
        let index_checkpoint_connection = index_options
            .connect()
            .await
            .map_err(|error| open_error(&index_path, error))?;
        tokio::spawn(checkpoint_loop(
            index_checkpoint_connection,
            sender_liveness.clone(),
        ));

        let last_stored_seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&mut writer_connection)
            .await?;
        let oldest_stored_seq: Option<i64> = sqlx::query_scalar("SELECT MIN(seq) FROM events")
            .fetch_one(&mut writer_connection)
            .await?;
        let mut indexed_through = index::indexed_through(&mut index_connection).await?;
        let terms_directory = index::terms_directory_for(&options.path);
        let opened =
            segments::TermIndex::open(&terms_directory, indexed_through, oldest_stored_seq)?;
        let terms = opened.index.clone();
        tracing::debug!(
            segments = terms.segment_count(),
            bytes = terms.disk_bytes(),
            "term index opened"
        );
        if !opened.consistent {
            // A lost or damaged segment, or a store from before term segments: start both indexes
            // over, so that they agree on what is indexed.
            tracing::warn!(
                directory = %terms_directory.display(),
                "term index does not cover the stored events; rebuilding the search indexes"
            );
            terms.clear();
            index::reset(&mut index_connection).await?;
            indexed_through = 0;
        }
        // Index whatever is stored but not indexed (a crash between the two commits, or an upgrade)
        // before answering anything, so searches are complete from the start.
        let indexed_through = index::catch_up(
            &mut index_connection,
            &terms,
            indexed_through,
            last_stored_seq,
        )
        .await?;
        if !opened.consistent {
            // Hand the old index's pages (and those of dropped FTS5 tables) back to the disk.
            sqlx::query("PRAGMA incremental_vacuum")
                .execute(&mut index_connection)
                .await?;
        }
        // Never reuse a seq the index may still name (retention can delete the newest events too).
        let next_seq = last_stored_seq.max(indexed_through) + 1;

        let attach_index = Arc::new(index_path.to_string_lossy().into_owned());
        let reads = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .min_connections(0)
            .idle_timeout(Some(Duration::from_secs(60)))
            .after_connect(move |connection, _| {
                let attach_index = attach_index.clone();
                Box::pin(async move {
                    sqlx::query("ATTACH DATABASE ? AS ix")
                        .bind(attach_index.as_str())
                        .execute(&mut *connection)
                        .await?;
                    sqlx::query("PRAGMA ix.cache_size = -1000")
                        .execute(&mut *connection)
                        .await?;
                    functions::register(connection).await?;
                    Ok(())
                })
            })
            .connect_with(connect_options)
            .await
            .map_err(|error| open_error(&options.path, error))?;
        let (committed_sender, committed) = tokio::sync::watch::channel(last_stored_seq);
        let (index_sender, index_receiver) = mpsc::channel(16);
        tokio::spawn(index::index_writer_loop(
            index_connection,
            terms.clone(),
            index_receiver,
            indexed_through,
        ));
        tokio::spawn(writer_loop(
            writer_connection,
            receiver,
            index_sender,
            committed_sender,
            options.writer_max_batch_events.max(1),
            next_seq,
        ));
        Ok(SqliteStore {
            reads,
            committed,
            writer: sender,
            path: options.path,
            index_path,
            terms,
            plan_choice: Arc::new(AtomicU8::new(0)),
        })
    }

    /// Forces a read plan (for tests and benchmarks).
    pub fn set_plan_choice(&self, choice: PlanChoice) {
        self.plan_choice.store(choice as u8, Ordering::Relaxed);
    }

    fn plan_choice(&self) -> PlanChoice {
        match self.plan_choice.load(Ordering::Relaxed) {
            1 => PlanChoice::ForceScan,
            2 => PlanChoice::ForceDriven,
            3 => PlanChoice::ForceSemiJoin,
            _ => PlanChoice::Automatic,
        }
    }

    /// The events database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The search index database file beside it.
    pub fn index_path(&self) -> &Path {
        &self.index_path
    }

    /// Counts a driver's candidates, stopping at `limit + 1`.
    async fn probe(&self, driver: &Driver, limit: i64) -> Result<i64, StoreError> {
        if let Driver::Seqs(seqs) = driver {
            return Ok((seqs.len() as i64).min(limit + 1));
        }
        let driver_sql = driver.to_sql();
        let probe = format!(
            "SELECT count(*) FROM ({} LIMIT {})",
            driver_sql.sql,
            limit + 1
        );
        let candidates: i64 = bind_all(
            sqlx::query_scalar(AssertSqlSafe(probe.as_str())),
            &driver_sql.params,
        )
        .fetch_one(&self.reads)
        .await?;
        Ok(candidates)
    }

    /// Picks the plan for a compiled predicate.
    ///
    /// - few candidates (at most [`SELECTIVE_DRIVER_ROWS`]): join from them, then sort;
    /// - more, up to [`SEMI_JOIN_DRIVER_ROWS`]: walk the time index and keep rows in the candidate set
    ///   (built once), which finds a page after few rows without a per-row index lookup;
    /// - more still, or no driver: walk the time index and test every row.
    ///
    /// For an intersection, each side is probed and the smallest one drives; the exact condition
    /// takes care of the others.
    async fn choose_plan(
        &self,
        compiled: &CompiledPredicate,
        whole_result: bool,
    ) -> Result<Plan, StoreError> {
        let Some(driver) = &compiled.driver else {
            return Ok(Plan::Scan);
        };
        let exact = compiled.driver_is_exact;
        match self.plan_choice() {
            PlanChoice::ForceScan => return Ok(Plan::Scan),
            PlanChoice::ForceDriven => {
                return Ok(Plan::Join {
                    driver: driver.clone(),
                    exact,
                });
            }
            PlanChoice::ForceSemiJoin => {
                return Ok(Plan::SemiJoin {
                    driver: driver.clone(),
                    exact,
                });
            }
            PlanChoice::Automatic => {}
        }
        if whole_result {
            // Counts and aggregates visit every match anyway: candidates are never more than all rows.
            return Ok(Plan::Join {
                driver: driver.clone(),
                exact,
            });
        }
        let (driver, exact) = match driver {
            Driver::Intersect(children) => {
                let mut best: Option<(i64, &Driver)> = None;
                for child in children {
                    let candidates = self.probe(child, SEMI_JOIN_DRIVER_ROWS).await?;
                    if best.is_none_or(|(fewest, _)| candidates < fewest) {
                        best = Some((candidates, child));
                    }
                }
                match best {
                    Some((_, child)) => (child, false),
                    None => return Ok(Plan::Scan),
                }
            }
            other => (other, exact),
        };
        let candidates = self.probe(driver, SEMI_JOIN_DRIVER_ROWS).await?;
        Ok(if candidates <= SELECTIVE_DRIVER_ROWS {
            Plan::Join {
                driver: driver.clone(),
                exact,
            }
        } else if candidates <= SEMI_JOIN_DRIVER_ROWS {
            Plan::SemiJoin {
                driver: driver.clone(),
                exact,
            }
        } else {
            Plan::Scan
        })
    }

    /// The FROM clause and the WHERE conditions for a filter under the chosen plan. `whole_result` is
    /// true for counts and aggregates, which visit every match.
    async fn plan_filter(
        &self,
        filter: &EventFilter,
        whole_result: bool,
    ) -> Result<FromWhere, StoreError> {
        let mut compiled = sql::compile(&filter.predicate);
        if let Some(driver) = compiled.driver.take() {
            // Term lookups decode posting lists: CPU work, kept off the async threads.
            let terms = self.terms.clone();
            compiled.driver = Some(
                tokio::task::spawn_blocking(move || {
                    driver.resolve(&|query: &segments::TermQuery| terms.lookup(query))
                })
                .await
                .map_err(|error| StoreError::Index(format!("term lookup failed: {error}")))?,
            );
        }
        let plan = self.choose_plan(&compiled, whole_result).await?;
        let mut from = SqlFragment::default();
        let mut conditions = SqlFragment {
            sql: " WHERE 1".into(),
            params: Vec::new(),
        };
        let skip_condition = match &plan {
            Plan::Join { driver, exact } => {
                let driver_sql = driver.to_sql();
                from.sql.push_str(" FROM (");
                from.sql.push_str(&driver_sql.sql);
                from.params.extend(driver_sql.params);
                from.sql
                    .push_str(") AS candidates CROSS JOIN events e ON e.seq = candidates.rowid");
                *exact
            }
            Plan::SemiJoin { driver, exact } => {
                let driver_sql = driver.to_sql();
                from.sql
                    .push_str(" FROM events e INDEXED BY events_by_time");
                conditions.sql.push_str(" AND e.seq IN (");
                conditions.sql.push_str(&driver_sql.sql);
                conditions.sql.push(')');
                conditions.params.extend(driver_sql.params);
                *exact
            }
            Plan::Scan => {
                from.sql
                    .push_str(" FROM events e INDEXED BY events_by_time");
                false
            }
        };
        // Each bound also on the time index's key (implied by the bound: the key never decreases as
        // time grows), so a walk of the index starts and stops at the right second.
        let mut bound = |bucket_comparison: &str, comparison: &str, micros: i64| {
            conditions.sql.push_str(&format!(
                " AND {TIME_BUCKET} {bucket_comparison} ? AND e.utctimestamp {comparison} ?"
            ));
            conditions
                .params
                .push(SqlParam::Integer(time_bucket(micros)));
            conditions.params.push(SqlParam::Integer(micros));
        };
        if let Some(from_micros) = filter.from_micros {
            bound(">=", ">=", from_micros);
        }
        if let Some(to_micros) = filter.to_micros {
            bound("<=", "<", to_micros);
        }
        if !skip_condition {
            conditions.sql.push_str(" AND ");
            conditions.sql.push_str(&compiled.condition.sql);
            conditions.params.extend(compiled.condition.params);
        }
        Ok(FromWhere { from, conditions })
    }
}

/// How a read finds its rows (see [`SqliteStore::choose_plan`]).
enum Plan {
    Join { driver: Driver, exact: bool },
    SemiJoin { driver: Driver, exact: bool },
    Scan,
}

/// A FROM clause and a WHERE clause (starting with ` WHERE`), kept apart so callers can join more tables.
struct FromWhere {
    from: SqlFragment,
    conditions: SqlFragment,
}

impl FromWhere {
    /// `select_list` + FROM + WHERE + `tail`, with all parameters in order.
    fn statement(
        &self,
        select_list: &str,
        extra_from: Option<&SqlFragment>,
        extra_conditions: Option<&SqlFragment>,
        tail: &str,
    ) -> (String, Vec<SqlParam>) {
        let mut sql = String::from(select_list);
        let mut params = Vec::new();
        sql.push_str(&self.from.sql);
        params.extend(self.from.params.iter().cloned());
        if let Some(extra) = extra_from {
            sql.push_str(&extra.sql);
            params.extend(extra.params.iter().cloned());
        }
        sql.push_str(&self.conditions.sql);
        params.extend(self.conditions.params.iter().cloned());
        if let Some(extra) = extra_conditions {
            sql.push_str(&extra.sql);
            params.extend(extra.params.iter().cloned());
        }
        sql.push_str(tail);
        (sql, params)
    }
}

fn bind_all<'q, O>(
    mut query: sqlx::query::QueryScalar<'q, sqlx::Sqlite, O, SqliteArguments>,
    params: &[SqlParam],
) -> sqlx::query::QueryScalar<'q, sqlx::Sqlite, O, SqliteArguments> {
    for param in params {
        query = match param {
            SqlParam::Text(text) => query.bind(text.clone()),
            SqlParam::Integer(integer) => query.bind(*integer),
            SqlParam::Real(real) => query.bind(*real),
        };
    }
    query
}

fn arguments_of(params: &[SqlParam]) -> Result<SqliteArguments, StoreError> {
    let mut arguments = SqliteArguments::default();
    for param in params {
        let result = match param {
            SqlParam::Text(text) => arguments.add(text.clone()),
            SqlParam::Integer(integer) => arguments.add(*integer),
            SqlParam::Real(real) => arguments.add(*real),
        };
        result.map_err(|error| StoreError::InvalidRequest(error.to_string()))?;
    }
    Ok(arguments)
}

/// Settings of a connection that writes (the events writer and the index writer).
async fn prepare_writer_connection(connection: &mut SqliteConnection) -> Result<(), StoreError> {
    for pragma in [
        // Checkpoints copy the log into the database file and fsync it: done on the commit path they
        // stall every writer behind them, so a connection of their own does them (`checkpoint_loop`).
        "PRAGMA wal_autocheckpoint = 0",
        // A writer touches the newest pages of every table and index: twice a reader's cache.
        "PRAGMA cache_size = -16000",
        // A statement's journal (the pages one multi-row INSERT changed, for rolling it back alone)
        // is small: kept in memory it spares a temporary file write per page.
        "PRAGMA temp_store = MEMORY",
    ] {
        sqlx::query(pragma).execute(&mut *connection).await?;
    }
    Ok(())
}

/// Applies the migrations a database file has not had yet, each in its own transaction.
async fn apply_migrations(
    connection: &mut SqliteConnection,
    path: &Path,
    migrations: &[&str],
) -> Result<(), StoreError> {
    let applied: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *connection)
        .await?;
    let applied =
        usize::try_from(applied).map_err(|_| open_error(path, "negative schema version"))?;
    if applied > migrations.len() {
        return Err(open_error(
            path,
            format!(
                "the database has schema version {applied}, newer than this isms knows ({})",
                migrations.len()
            ),
        ));
    }
    for (index, migration) in migrations.iter().enumerate().skip(applied) {
        let mut transaction = connection.begin().await?;
        sqlx::raw_sql(AssertSqlSafe(*migration))
            .execute(&mut *transaction)
            .await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "PRAGMA user_version = {}",
            index + 1
        )))
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        tracing::info!(path = %path.display(), version = index + 1, "applied store migration");
    }
    Ok(())
}

/// Copies the write-ahead log into the database file twice a second, beside the writer, for as long as
/// the store is open. PASSIVE never blocks the writer or readers; a log that grows past 16,384 frames
/// between two passes is truncated once readers allow it.
async fn checkpoint_loop(
    mut connection: SqliteConnection,
    store_alive: mpsc::WeakSender<AppendJob>,
) {
    let mut interval = tokio::time::interval(Duration::from_millis(500));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if store_alive.upgrade().is_none() {
            break;
        }
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut connection)
            .await
        {
            Ok((_, log_frames, _)) if log_frames > 16_384 => {
                let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&mut connection)
                    .await;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "write-ahead log checkpoint failed; will try again")
            }
        }
    }
}

/// Group commit for both writers: waits for one job, then takes whatever else is already queued, until
/// the group holds `max_events` events. Returns the jobs and their event count; `None` once the senders
/// are gone.
async fn receive_group<Job>(
    receiver: &mut mpsc::Receiver<Job>,
    max_events: usize,
    events_of: impl Fn(&Job) -> usize,
) -> Option<(Vec<Job>, usize)> {
    let first = receiver.recv().await?;
    let mut events = events_of(&first);
    let mut jobs = vec![first];
    while events < max_events {
        match receiver.try_recv() {
            Ok(job) => {
                events += events_of(&job);
                jobs.push(job);
            }
            Err(_) => break,
        }
    }
    Some((jobs, events))
}

async fn writer_loop(
    mut connection: SqliteConnection,
    mut receiver: mpsc::Receiver<AppendJob>,
    index_sender: mpsc::Sender<index::IndexJob>,
    committed: tokio::sync::watch::Sender<i64>,
    max_batch_events: usize,
    mut next_seq: i64,
) {
    while let Some((jobs, batch_events)) =
        receive_group(&mut receiver, max_batch_events, |job| job.events.len()).await
    {
        let result = write_batch(&mut connection, &jobs, next_seq).await;
        metrics::counter!("isms_store_commits_total").increment(1);
        metrics::histogram!("isms_store_commit_events").record(batch_events as f64);
        if let Err(error) = result {
            // The transaction was rolled back: its seqs are free again.
            tracing::error!(%error, events = batch_events, "store write failed; the batch is not acknowledged");
            let reason = error.to_string();
            for job in jobs {
                let _ = job.reply.send(Err(reason.clone()));
            }
            continue;
        }
        // Stored: the index writer indexes the batch and answers the callers.
        let mut rows = Vec::with_capacity(batch_events);
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            for event in job.events {
                rows.push(index::IndexRow {
                    seq: next_seq,
                    terms: event.terms,
                });
                next_seq += 1;
            }
            replies.push(job.reply);
        }
        committed.send_replace(next_seq - 1);
        if let Err(unsent) = index_sender.send(index::IndexJob { rows, replies }).await {
            // Only when the store is shutting down; the events are stored and indexed at next open.
            for reply in unsent.0.replies {
                let _ = reply.send(Ok(()));
            }
        }
    }
    tracing::debug!("store writer stopped");
}

async fn write_batch(
    connection: &mut SqliteConnection,
    jobs: &[AppendJob],
    first_seq: i64,
) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let mut insert_micros = 0u128;
    let mut transaction = connection.begin().await?;
    let mut rows: Vec<(i64, &PreparedEvent)> =
        Vec::with_capacity(jobs.iter().map(|job| job.events.len()).sum());
    let mut seq = first_seq;
    for job in jobs {
        for event in &job.events {
            rows.push((seq, event));
            seq += 1;
        }
    }
    for chunk in insert_chunks(&rows) {
        let mut statement = String::from(
            "INSERT INTO events (seq, id, utctimestamp, receivedtimestamp, doc) VALUES ",
        );
        let mut arguments = SqliteArguments::default();
        for (position, (seq, event)) in chunk.iter().enumerate() {
            statement.push_str(if position == 0 {
                "(?,?,?,?,?)"
            } else {
                ",(?,?,?,?,?)"
            });
            add(&mut arguments, *seq)?;
            add(&mut arguments, event.id.to_vec())?;
            add(&mut arguments, event.utctimestamp)?;
            add(&mut arguments, event.receivedtimestamp)?;
            add(&mut arguments, event.document.clone())?;
        }
        let phase_started = std::time::Instant::now();
        sqlx::query_with(AssertSqlSafe(statement.as_str()), arguments)
            .execute(&mut *transaction)
            .await?;
        insert_micros += phase_started.elapsed().as_micros();
    }
    let phase_started = std::time::Instant::now();
    transaction.commit().await?;
    let commit_micros = phase_started.elapsed().as_micros();
    tracing::debug!(
        events = rows.len(),
        total_micros = started.elapsed().as_micros() as u64,
        insert_micros = insert_micros as u64,
        commit_micros = commit_micros as u64,
        "store batch committed"
    );
    metrics::histogram!("isms_store_commit_seconds").record(started.elapsed().as_secs_f64());
    Ok(())
}

fn add<'q, T>(arguments: &mut SqliteArguments, value: T) -> Result<(), StoreError>
where
    T: sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + 'q,
{
    arguments
        .add(value)
        .map_err(|error| StoreError::InvalidRequest(error.to_string()))
}

fn prepare(events: Vec<Event>) -> Vec<PreparedEvent> {
    let mut preparer = EventPreparer::default();
    events.iter().map(|event| preparer.prepare(event)).collect()
}

fn parse_document(seq: i64, text: &str) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(StoreError::Corrupt {
            seq,
            reason: "not a JSON object".into(),
        }),
        Err(error) => Err(StoreError::Corrupt {
            seq,
            reason: error.to_string(),
        }),
    }
}

fn encode_cursor(utctimestamp: i64, seq: i64) -> String {
    format!("{utctimestamp}_{seq}")
}

fn decode_cursor(cursor: &str) -> Result<(i64, i64), StoreError> {
    let invalid =
        || StoreError::InvalidCursor(format!("{cursor:?} is not a cursor returned by a search"));
    let (time, seq) = cursor.split_once('_').ok_or_else(invalid)?;
    Ok((
        time.parse().map_err(|_| invalid())?,
        seq.parse().map_err(|_| invalid())?,
    ))
}

/// Hard bound on histogram buckets, so a tiny interval over a long range cannot exhaust memory.
const MAX_HISTOGRAM_BUCKETS: i64 = 100_000;

impl Store for SqliteStore {
    fn append(&self, events: Vec<Event>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if events.is_empty() {
                return Ok(());
            }
            let prepared = if events.len() > 64 {
                tokio::task::spawn_blocking(move || prepare(events))
                    .await
                    .map_err(|_| StoreError::WriterStopped)?
            } else {
                prepare(events)
            };
            self.append_prepared(prepared).await
        })
    }

    fn append_prepared(&self, prepared: Vec<PreparedEvent>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if prepared.is_empty() {
                return Ok(());
            }
            let (reply, answer) = oneshot::channel();
            self.writer
                .send(AppendJob {
                    events: prepared,
                    reply,
                })
                .await
                .map_err(|_| StoreError::WriterStopped)?;
            match answer.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(StoreError::InvalidRequest(format!(
                    "the batch was not committed: {reason}"
                ))),
                Err(_) => Err(StoreError::WriterStopped),
            }
        })
    }

    fn search<'a>(&'a self, request: &'a SearchRequest) -> StoreFuture<'a, SearchPage> {
        Box::pin(async move {
            let (comparison, bucket_comparison, order) = match request.sort {
                SortOrder::Desc => ("<", "<=", "DESC"),
                SortOrder::Asc => (">", ">=", "ASC"),
            };
            let cursor_condition = match &request.cursor {
                Some(cursor) => {
                    let (time, seq) = decode_cursor(cursor)?;
                    Some(SqlFragment {
                        sql: format!(
                            " AND {TIME_BUCKET} {bucket_comparison} ? AND (e.utctimestamp, e.seq) {comparison} (?, ?)"
                        ),
                        params: vec![
                            SqlParam::Integer(time_bucket(time)),
                            SqlParam::Integer(time),
                            SqlParam::Integer(seq),
                        ],
                    })
                }
                None => None,
            };
            let from_where = self.plan_filter(&request.filter, false).await?;
            let limit = request.limit.clamp(1, 10_000);
            let (statement, params) = from_where.statement(
                "SELECT e.seq, e.utctimestamp, e.doc",
                None,
                cursor_condition.as_ref(),
                &format!(
                    " ORDER BY {TIME_BUCKET} {order}, e.utctimestamp {order}, e.seq {order} LIMIT {}",
                    limit + 1
                ),
            );
            let rows = sqlx::query_with(AssertSqlSafe(statement.as_str()), arguments_of(&params)?)
                .fetch_all(&self.reads)
                .await?;
            let mut events = Vec::with_capacity(rows.len().min(limit));
            let mut last = None;
            for row in rows.iter().take(limit) {
                let seq: i64 = row.try_get(0)?;
                let time: i64 = row.try_get(1)?;
                let text: &str = row.try_get(2)?;
                events.push(parse_document(seq, text)?);
                last = Some((time, seq));
            }
            let next_cursor = if rows.len() > limit {
                last.map(|(time, seq)| encode_cursor(time, seq))
            } else {
                None
            };
            Ok(SearchPage {
                events,
                next_cursor,
            })
        })
    }

    fn count<'a>(&'a self, filter: &'a EventFilter) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let from_where = self.plan_filter(filter, true).await?;
            let (statement, params) = from_where.statement("SELECT count(*)", None, None, "");
            let count: i64 =
                sqlx::query_with(AssertSqlSafe(statement.as_str()), arguments_of(&params)?)
                    .fetch_one(&self.reads)
                    .await?
                    .try_get(0)?;
            Ok(count.max(0) as u64)
        })
    }

    fn histogram<'a>(
        &'a self,
        filter: &'a EventFilter,
        interval_micros: i64,
    ) -> StoreFuture<'a, Vec<HistogramBucket>> {
        Box::pin(async move {
            if interval_micros <= 0 {
                return Err(StoreError::InvalidRequest(
                    "the histogram interval must be positive".into(),
                ));
            }
            if let (Some(from), Some(to)) = (filter.from_micros, filter.to_micros)
                && (to - from) / interval_micros > MAX_HISTOGRAM_BUCKETS
            {
                return Err(StoreError::InvalidRequest(format!(
                    "the interval makes more than {MAX_HISTOGRAM_BUCKETS} buckets over this range; choose a larger one"
                )));
            }
            let from_where = self.plan_filter(filter, true).await?;
            // Floor division that also works before 1970.
            let (statement, params) = from_where.statement(
                &format!(
                    "SELECT (e.utctimestamp - ((e.utctimestamp % {interval_micros}) + {interval_micros}) % {interval_micros}) AS bucket, count(*)"
                ),
                None,
                None,
                &format!(" GROUP BY bucket ORDER BY bucket LIMIT {}", MAX_HISTOGRAM_BUCKETS + 1),
            );
            let rows = sqlx::query_with(AssertSqlSafe(statement.as_str()), arguments_of(&params)?)
                .fetch_all(&self.reads)
                .await?;
            if rows.len() as i64 > MAX_HISTOGRAM_BUCKETS {
                return Err(StoreError::InvalidRequest(format!(
                    "the interval makes more than {MAX_HISTOGRAM_BUCKETS} buckets; choose a larger one or a shorter range"
                )));
            }
            rows.iter()
                .map(|row| {
                    let start_micros: i64 = row.try_get(0)?;
                    let count: i64 = row.try_get(1)?;
                    Ok(HistogramBucket {
                        start_micros,
                        count: count.max(0) as u64,
                    })
                })
                .collect()
        })
    }

    fn top_values<'a>(
        &'a self,
        filter: &'a EventFilter,
        field: &'a FieldPath,
        limit: usize,
    ) -> StoreFuture<'a, Vec<TopValue>> {
        Box::pin(async move {
            let from_where = self.plan_filter(filter, true).await?;
            let path = sql::json_path(field);
            let json_from = SqlFragment {
                sql: ", json_each(e.doc, ?) j".into(),
                params: vec![SqlParam::Text(path.clone())],
            };
            let json_conditions = SqlFragment {
                sql: " AND j.type IN ('text','integer','real','true','false') AND json_type(e.doc, ?) <> 'object'".into(),
                params: vec![SqlParam::Text(path)],
            };
            // One count per event and distinct value, like a terms facet.
            let (inner, params) = from_where.statement(
                "SELECT DISTINCT e.seq, \
                 (CASE j.type WHEN 'text' THEN j.atom WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE e.doc -> j.fullkey END) AS value",
                Some(&json_from),
                Some(&json_conditions),
                "",
            );
            let statement = format!(
                "SELECT value, count(*) AS hits FROM ({inner}) GROUP BY value ORDER BY hits DESC, value ASC LIMIT {}",
                limit.clamp(1, 1000)
            );
            let rows = sqlx::query_with(AssertSqlSafe(statement.as_str()), arguments_of(&params)?)
                .fetch_all(&self.reads)
                .await?;
            rows.iter()
                .map(|row| {
                    let value: String = row.try_get(0)?;
                    let count: i64 = row.try_get(1)?;
                    Ok(TopValue {
                        value,
                        count: count.max(0) as u64,
                    })
                })
                .collect()
        })
    }

    fn get_event<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Map<String, Value>>> {
        Box::pin(async move {
            let Some(token) = crate::terms::id_token(id) else {
                return Ok(None);
            };
            // The token is a kind byte and the id's 16 bytes, as the `id` column holds them.
            let id_bytes = token[1..].to_vec();
            // Ids are found through their tokens in the term index (there is no b-tree on
            // `events.id`); the row's id column confirms the candidate.
            let terms = self.terms.clone();
            let candidates = tokio::task::spawn_blocking(move || {
                terms.lookup(&segments::TermQuery::Token(token))
            })
            .await
            .map_err(|error| StoreError::Index(format!("term lookup failed: {error}")))?;
            // One candidate, unless retention deleted an event whose postings remain.
            for seq in candidates {
                let row = sqlx::query("SELECT seq, doc FROM events WHERE seq = ? AND id = ?")
                    .bind(seq)
                    .bind(id_bytes.clone())
                    .fetch_optional(&self.reads)
                    .await?;
                if let Some(row) = row {
                    return Ok(Some(parse_document(row.try_get(0)?, row.try_get(1)?)?));
                }
            }
            Ok(None)
        })
    }

    fn events_after(&self, after_seq: i64, limit: usize) -> StoreFuture<'_, Vec<StoredEvent>> {
        Box::pin(async move {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows =
                sqlx::query("SELECT seq, doc FROM events WHERE seq > ? ORDER BY seq LIMIT ?")
                    .bind(after_seq)
                    .bind(limit)
                    .fetch_all(&self.reads)
                    .await?;
            rows.iter()
                .map(|row| {
                    let seq: i64 = row.try_get(0)?;
                    Ok(StoredEvent {
                        seq,
                        document: parse_document(seq, row.try_get(1)?)?,
                    })
                })
                .collect()
        })
    }

    fn committed_seq(&self) -> tokio::sync::watch::Receiver<i64> {
        self.committed.clone()
    }

    fn health(&self) -> StoreFuture<'_, StoreHealth> {
        Box::pin(async move {
            let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(&self.reads)
                .await?;
            Ok(StoreHealth {
                backend: "sqlite".into(),
                events: events.max(0) as u64,
                bytes: self.used_bytes().await?,
            })
        })
    }

    fn apply_retention(&self, policy: RetentionPolicy) -> StoreFuture<'_, RetentionOutcome> {
        Box::pin(async move {
            let mut outcome = RetentionOutcome::default();
            if let Some(max_age) = policy.max_age_micros {
                let cutoff = jiff::Timestamp::now().as_microsecond() - max_age;
                loop {
                    // Oldest arrivals first; stop at the first one young enough.
                    let rows: Vec<(i64, i64)> = sqlx::query_as(
                        "SELECT seq, receivedtimestamp FROM events ORDER BY seq LIMIT 5000",
                    )
                    .fetch_all(&self.reads)
                    .await?;
                    let expired: Vec<i64> = rows
                        .iter()
                        .take_while(|(_, received)| *received < cutoff)
                        .map(|(seq, _)| *seq)
                        .collect();
                    if expired.is_empty() {
                        break;
                    }
                    outcome.deleted_for_age += self.delete_seqs(&expired).await?;
                    if expired.len() < rows.len() {
                        break;
                    }
                }
            }
            if let Some(max_bytes) = policy.max_bytes {
                for _round in 0..1000 {
                    let used = self.used_bytes().await?;
                    if used <= max_bytes {
                        break;
                    }
                    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
                        .fetch_one(&self.reads)
                        .await?;
                    if events == 0 {
                        break;
                    }
                    let per_event = (used / events as u64).max(1);
                    let excess_events = ((used - max_bytes) / per_event).clamp(1, 50_000) as i64;
                    let seqs: Vec<i64> =
                        sqlx::query_scalar("SELECT seq FROM events ORDER BY seq LIMIT ?")
                            .bind(excess_events)
                            .fetch_all(&self.reads)
                            .await?;
                    outcome.deleted_for_size += self.delete_seqs(&seqs).await?;
                }
            }
            if outcome.deleted_for_age + outcome.deleted_for_size > 0 {
                self.compact_after_deletes().await?;
                tracing::info!(
                    deleted_for_age = outcome.deleted_for_age,
                    deleted_for_size = outcome.deleted_for_size,
                    "retention deleted events"
                );
            }
            Ok(outcome)
        })
    }

    fn insert_key(&self, record: KeyRecord) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let result = sqlx::query(
                "INSERT INTO api_keys (id, name, hash, created, revoked) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&record.id)
            .bind(&record.name)
            .bind(&record.hash)
            .bind(record.created_micros)
            .bind(record.revoked_micros)
            .execute(&self.reads)
            .await;
            match result {
                Ok(_) => Ok(()),
                Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                    Err(StoreError::DuplicateKeyName(record.name))
                }
                Err(error) => Err(error.into()),
            }
        })
    }

    fn list_keys(&self) -> StoreFuture<'_, Vec<KeyRecord>> {
        Box::pin(async move {
            let rows: Vec<(String, String, String, i64, Option<i64>)> = sqlx::query_as(
                "SELECT id, name, hash, created, revoked FROM api_keys ORDER BY created, id",
            )
            .fetch_all(&self.reads)
            .await?;
            Ok(rows.into_iter().map(key_record).collect())
        })
    }

    fn key_by_id<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
        Box::pin(async move {
            let row: Option<(String, String, String, i64, Option<i64>)> = sqlx::query_as(
                "SELECT id, name, hash, created, revoked FROM api_keys WHERE id = ?",
            )
            .bind(id)
            .fetch_optional(&self.reads)
            .await?;
            Ok(row.map(key_record))
        })
    }

    fn revoke_key<'a>(&'a self, id_or_name: &'a str, at_micros: i64) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let result = sqlx::query(
                "UPDATE api_keys SET revoked = ? WHERE revoked IS NULL AND (id = ? OR name = ?)",
            )
            .bind(at_micros)
            .bind(id_or_name)
            .bind(id_or_name)
            .execute(&self.reads)
            .await?;
            Ok(result.rows_affected())
        })
    }

    fn insert_record(&self, record: ControlRecord) -> StoreFuture<'_, i64> {
        Box::pin(async move {
            let result = sqlx::query(
                "INSERT INTO control_records (kind, scope, name, document, created, updated, deleted) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&record.kind)
            .bind(&record.scope)
            .bind(&record.name)
            .bind(record.document.to_string())
            .bind(record.created_micros)
            .bind(record.updated_micros)
            .bind(record.deleted_micros)
            .execute(&self.reads)
            .await
            .map_err(|error| duplicate_record(error, &record))?;
            Ok(result.last_insert_rowid())
        })
    }

    fn update_record(&self, record: ControlRecord) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let result = sqlx::query(
                "UPDATE control_records SET scope = ?, name = ?, document = ?, updated = ?, deleted = ? WHERE id = ? AND kind = ?",
            )
            .bind(&record.scope)
            .bind(&record.name)
            .bind(record.document.to_string())
            .bind(record.updated_micros)
            .bind(record.deleted_micros)
            .bind(record.id)
            .bind(&record.kind)
            .execute(&self.reads)
            .await
            .map_err(|error| duplicate_record(error, &record))?;
            Ok(result.rows_affected() == 1)
        })
    }

    fn records<'a>(&'a self, kind: &'a str) -> StoreFuture<'a, Vec<ControlRecord>> {
        Box::pin(async move {
            let rows: Vec<ControlRow> = sqlx::query_as(
                "SELECT id, kind, scope, name, document, created, updated, deleted FROM control_records WHERE kind = ? ORDER BY id",
            )
            .bind(kind)
            .fetch_all(&self.reads)
            .await?;
            rows.into_iter().map(control_record).collect()
        })
    }
}

type ControlRow = (i64, String, String, String, String, i64, i64, Option<i64>);

fn control_record(
    (id, kind, scope, name, document, created_micros, updated_micros, deleted_micros): ControlRow,
) -> Result<ControlRecord, StoreError> {
    let document = serde_json::from_str(&document).map_err(|error| {
        StoreError::InvalidRequest(format!(
            "control record {id} has a damaged document: {error}"
        ))
    })?;
    Ok(ControlRecord {
        id,
        kind,
        scope,
        name,
        document,
        created_micros,
        updated_micros,
        deleted_micros,
    })
}

/// A unique-name violation as the store's error for it.
fn duplicate_record(error: sqlx::Error, record: &ControlRecord) -> StoreError {
    match error {
        sqlx::Error::Database(database) if database.is_unique_violation() => {
            StoreError::DuplicateRecordName {
                kind: record.kind.clone(),
                name: record.name.clone(),
            }
        }
        other => other.into(),
    }
}

fn key_record(
    (id, name, hash, created_micros, revoked_micros): (String, String, String, i64, Option<i64>),
) -> KeyRecord {
    KeyRecord {
        id,
        name,
        hash,
        created_micros,
        revoked_micros,
    }
}

impl SqliteStore {
    /// Bytes in use in both database files (free pages not counted) and the term segments.
    async fn used_bytes(&self) -> Result<u64, StoreError> {
        let mut total = 0u64;
        let mut connection = self.reads.acquire().await?;
        for schema in ["main", "ix"] {
            let pages: i64 =
                sqlx::query_scalar(AssertSqlSafe(format!("PRAGMA {schema}.page_count")))
                    .fetch_one(&mut *connection)
                    .await?;
            let free: i64 =
                sqlx::query_scalar(AssertSqlSafe(format!("PRAGMA {schema}.freelist_count")))
                    .fetch_one(&mut *connection)
                    .await?;
            let page_size: i64 =
                sqlx::query_scalar(AssertSqlSafe(format!("PRAGMA {schema}.page_size")))
                    .fetch_one(&mut *connection)
                    .await?;
            total += ((pages - free).max(0) * page_size) as u64;
        }
        Ok(total + self.terms.disk_bytes())
    }

    async fn delete_seqs(&self, seqs: &[i64]) -> Result<u64, StoreError> {
        let mut deleted = 0;
        let mut connection = self.reads.acquire().await?;
        for chunk in insert_chunks(seqs) {
            let placeholders = vec!["?"; chunk.len()].join(",");
            let mut transaction = connection.begin().await?;
            let statement = format!("DELETE FROM events WHERE seq IN ({placeholders})");
            let mut query = sqlx::query(AssertSqlSafe(statement.as_str()));
            for seq in chunk {
                query = query.bind(*seq);
            }
            deleted += query.execute(&mut *transaction).await?.rows_affected();
            transaction.commit().await?;
        }
        Ok(deleted)
    }

    /// After a retention pass: drops term segments of deleted events and gives freed pages back to the
    /// file system. Once per pass, not per deleted chunk.
    async fn compact_after_deletes(&self) -> Result<(), StoreError> {
        let mut connection = self.reads.acquire().await?;
        // Term segments whose events are all gone go whole (the oldest events are deleted first).
        let oldest_stored_seq: Option<i64> = sqlx::query_scalar("SELECT MIN(seq) FROM events")
            .fetch_one(&mut *connection)
            .await?;
        // With no event left, keep the segments: one published for a batch stored after the query
        // above would otherwise go too. Their postings name nothing; the next pass drops them.
        if let Some(oldest_stored_seq) = oldest_stored_seq {
            self.terms.remove_before(oldest_stored_seq);
        }
        for schema in ["main", "ix"] {
            sqlx::query(AssertSqlSafe(format!("PRAGMA {schema}.incremental_vacuum")))
                .execute(&mut *connection)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod insert_chunk_tests {
    use super::{ROWS_PER_INSERT, insert_chunks};

    #[test]
    fn rows_are_cut_into_few_distinct_lengths_covering_them_all_in_order() {
        let mut lengths = std::collections::BTreeSet::new();
        for total in [0, 1, 2, 3, 7, 999, 1_000, 1_024, 1_025, 3_333, 20_000] {
            let rows: Vec<usize> = (0..total).collect();
            let chunks: Vec<&[usize]> = insert_chunks(&rows).collect();
            let joined: Vec<usize> = chunks
                .iter()
                .flat_map(|chunk| chunk.iter().copied())
                .collect();
            assert_eq!(joined, rows, "{total} rows");
            for chunk in chunks {
                assert!(chunk.len().is_power_of_two() && chunk.len() <= ROWS_PER_INSERT);
                lengths.insert(chunk.len());
            }
        }
        assert!(lengths.len() <= 11, "{lengths:?}");
    }
}
