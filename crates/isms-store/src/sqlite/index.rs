//! The search index lives apart from the events, written by a second writer task: summary words and
//! field terms in segment files (see `segments.rs`), the indexing progress in a small database file of
//! its own.
//!
//! Why a second writer: SQLite lets one connection write a database at a time, and building the inverted
//! index costs about as much as storing the events. With both in one task, one thread did both and
//! capped ingestion while the other core idled. Now the events writer commits a batch (durably) and
//! hands it here; while this task indexes it, the events writer is already storing the next batch. A
//! caller is answered once its events are stored *and* indexed, so a search that follows an append sees
//! the events.
//!
//! The index can always be rebuilt from the events, so its progress is committed without an fsync
//! (`synchronous = NORMAL`: a power cut can lose its last commits, never its consistency).
//! `index_state.indexed_through` records the last `seq` indexed; every event up to it is indexed. A
//! batch's segment is fsynced and published just before the transaction that advances it commits
//! (segments past `indexed_through` are discarded at open). Whenever a batch arrives past a gap (after a
//! crash, a power cut, a failed index commit, or on a store from before the split) the gap is first
//! indexed from the events table.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::segments::{SegmentError, TermIndex};
use crate::StoreError;
use crate::terms::TermWriter;

/// The index schema, in order; the index file's own `PRAGMA user_version` counts the applied ones.
const INDEX_MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite-index/0001_index.sql"),
    include_str!("../../migrations/sqlite-index/0002_terms_in_segments.sql"),
    include_str!("../../migrations/sqlite-index/0003_words_in_segments.sql"),
    include_str!("../../migrations/sqlite-index/0004_ids_as_terms.sql"),
];

/// Events read back from the events table per step when indexing a gap (one term segment each).
const CATCH_UP_CHUNK: i64 = 20_000;

/// The index writer takes at most this many events into one transaction.
const INDEX_MAX_BATCH_EVENTS: usize = 20_000;

/// What one stored event contributes to the indexes.
pub(super) struct IndexRow {
    pub seq: i64,
    /// Its tokens, as [`TermWriter::terms_of`] writes them.
    pub terms: Arc<[u8]>,
}

/// Events the events writer committed, in `seq` order, and the callers to answer once they are indexed.
pub(super) struct IndexJob {
    pub rows: Vec<IndexRow>,
    pub replies: Vec<oneshot::Sender<Result<(), String>>>,
}

/// The index file beside an events file: `isms.db` → `isms-index.db`.
pub(super) fn index_path_for(events_path: &Path) -> PathBuf {
    let stem = file_stem_of(events_path);
    let name = match events_path.extension() {
        Some(extension) => format!("{stem}-index.{}", extension.to_string_lossy()),
        None => format!("{stem}-index"),
    };
    events_path.with_file_name(name)
}

/// The term segments' directory beside an events file: `isms.db` → `isms-terms/`.
pub(super) fn terms_directory_for(events_path: &Path) -> PathBuf {
    events_path.with_file_name(format!("{}-terms", file_stem_of(events_path)))
}

fn file_stem_of(events_path: &Path) -> String {
    events_path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "isms".to_owned())
}

impl From<SegmentError> for StoreError {
    fn from(error: SegmentError) -> StoreError {
        StoreError::Index(error.to_string())
    }
}

/// Forgets `indexed_through` (with [`TermIndex::clear`]: before a full rebuild).
pub(super) async fn reset(connection: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM index_state WHERE key = 'indexed_through'")
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Creates or upgrades the index schema on a connection to the index file.
pub(super) async fn migrate_index(
    connection: &mut SqliteConnection,
    path: &Path,
) -> Result<(), StoreError> {
    super::apply_migrations(connection, path, INDEX_MIGRATIONS).await
}

/// The last `seq` whose event is indexed (0 when none is).
pub(super) async fn indexed_through(connection: &mut SqliteConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE((SELECT value FROM index_state WHERE key = 'indexed_through'), 0)",
    )
    .fetch_one(&mut *connection)
    .await?)
}

/// Indexes every stored event after `indexed_through` up to `through_seq` (inclusive), reading them from
/// the events file (attached as `ev`). Returns the new `indexed_through`.
pub(super) async fn catch_up(
    connection: &mut SqliteConnection,
    terms: &Arc<TermIndex>,
    mut indexed_through: i64,
    through_seq: i64,
) -> Result<i64, StoreError> {
    let started = std::time::Instant::now();
    let from = indexed_through;
    if through_seq - from > 100_000 {
        // About a minute per 5 million events (an upgrade, a lost index): say why the store is busy.
        tracing::info!(
            from_seq = from + 1,
            through_seq,
            "indexing stored events that are not indexed yet"
        );
    }
    let mut term_writer = TermWriter::default();
    while indexed_through < through_seq {
        let documents: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, doc FROM ev.events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
        )
        .bind(indexed_through)
        .bind(through_seq)
        .bind(CATCH_UP_CHUNK)
        .fetch_all(&mut *connection)
        .await?;
        let rows: Vec<IndexRow> = documents
            .iter()
            .filter_map(|(seq, text)| {
                // A row that is not a JSON object cannot be searched anyway; searches report it.
                let Ok(Value::Object(document)) = serde_json::from_str::<Value>(text) else {
                    tracing::warn!(seq, "stored event is not a JSON object; not indexed");
                    return None;
                };
                Some(IndexRow {
                    seq: *seq,
                    terms: Arc::from(term_writer.terms_of(&document)),
                })
            })
            .collect();
        // No more events in the range: the rest of it was deleted or never committed.
        let next = if (documents.len() as i64) < CATCH_UP_CHUNK {
            through_seq
        } else {
            documents.last().map_or(through_seq, |(seq, _)| *seq)
        };
        write_index_rows(
            connection,
            terms,
            &rows.iter().collect::<Vec<_>>(),
            indexed_through,
            next,
        )
        .await?;
        indexed_through = next;
    }
    if indexed_through > from {
        tracing::info!(
            from_seq = from + 1,
            through_seq = indexed_through,
            millis = started.elapsed().as_millis() as u64,
            "indexed stored events that were not indexed yet"
        );
    }
    Ok(indexed_through)
}

/// Indexes events `from + 1 ..= through` (`rows` are those still stored): writes their segment (on a
/// blocking thread) and publishes it just before the transaction that records `indexed_through` commits.
async fn write_index_rows(
    connection: &mut SqliteConnection,
    terms: &Arc<TermIndex>,
    rows: &[&IndexRow],
    from: i64,
    through: i64,
) -> Result<(), StoreError> {
    let term_rows: Vec<(i64, Arc<[u8]>)> = rows
        .iter()
        .map(|row| (row.seq, row.terms.clone()))
        .collect();
    let segment_writer = terms.clone();
    let segment = tokio::task::spawn_blocking(move || {
        segment_writer.write_segment(&term_rows, from, through)
    });
    let recorded = async {
        let mut transaction = connection.begin().await?;
        sqlx::query(
            "INSERT INTO index_state (key, value) VALUES ('indexed_through', ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(through)
        .execute(&mut *transaction)
        .await?;
        Ok::<_, StoreError>(transaction)
    }
    .await;
    let pending = segment
        .await
        .map_err(|error| StoreError::Index(format!("term segment writer failed: {error}")))??;
    let transaction = match recorded {
        Ok(transaction) => transaction,
        Err(error) => {
            // The segment must not outlive the failed batch (the retry writes its own).
            pending.discard();
            return Err(error);
        }
    };
    terms.publish(pending)?;
    if let Err(error) = transaction.commit().await {
        terms.remove_after(from);
        return Err(error.into());
    }
    terms.committed(through);
    Ok(())
}

/// Indexes what the events writer sends, in order, and answers the callers.
pub(super) async fn index_writer_loop(
    mut connection: SqliteConnection,
    terms: Arc<TermIndex>,
    mut receiver: mpsc::Receiver<IndexJob>,
    mut indexed_through: i64,
) {
    while let Some((jobs, batch_events)) =
        super::receive_group(&mut receiver, INDEX_MAX_BATCH_EVENTS, |job| job.rows.len()).await
    {
        let started = std::time::Instant::now();
        let result = index_jobs(&mut connection, &terms, &jobs, indexed_through).await;
        match result {
            Ok(through) => {
                indexed_through = through;
                tracing::debug!(
                    events = batch_events,
                    total_micros = started.elapsed().as_micros() as u64,
                    "index batch committed"
                );
            }
            Err(error) => {
                // The events are stored durably; the next batch indexes this gap from the events table
                // (see `catch_up`), so the callers are still told their events are stored.
                metrics::counter!("isms_store_index_failures_total").increment(1);
                tracing::error!(%error, events = batch_events, "index write failed; the events are stored and will be indexed with the next batch");
                tokio::time::sleep(Duration::from_millis(100)).await;
                // A gap indexed before the failure is committed; start the next batch from there.
                if let Ok(through) = self::indexed_through(&mut connection).await {
                    indexed_through = through;
                    terms.remove_after(through);
                }
            }
        }
        for job in jobs {
            for reply in job.replies {
                let _ = reply.send(Ok(()));
            }
        }
    }
    tracing::debug!("store index writer stopped");
}

async fn index_jobs(
    connection: &mut SqliteConnection,
    terms: &Arc<TermIndex>,
    jobs: &[IndexJob],
    indexed_through: i64,
) -> Result<i64, StoreError> {
    let Some(first_seq) = jobs
        .iter()
        .find_map(|job| job.rows.first().map(|row| row.seq))
    else {
        return Ok(indexed_through);
    };
    let mut indexed_through = indexed_through;
    if first_seq > indexed_through + 1 {
        indexed_through = catch_up(connection, terms, indexed_through, first_seq - 1).await?;
    }
    let rows: Vec<&IndexRow> = jobs
        .iter()
        .flat_map(|job| job.rows.iter())
        .filter(|row| row.seq > indexed_through)
        .collect();
    let Some(last_seq) = rows.last().map(|row| row.seq) else {
        return Ok(indexed_through);
    };
    write_index_rows(connection, terms, &rows, indexed_through, last_seq).await?;
    Ok(last_seq)
}
