//! The term index: immutable, sorted segment files instead of FTS5 tables.
//!
//! Why not FTS5: every event carries some 35 field terms and a dozen summary words (see `terms.rs`);
//! FTS5 re-tokenized them, kept them in a pending hash, then merged its b-tree segments inside the index
//! writer's transaction. That was the costliest single step of ingestion, and it grew with the index.
//! Terms need none of FTS5's features (no ranking or tokenizer; phrases are checked on the stored
//! summary), only "which events hold this token (or a token with this prefix)". So each index batch
//! becomes one file:
//!
//! - entries in key order, each `varint(key length) key varint(postings length) postings`, postings
//!   being the batch's `seq`s holding the token, delta-encoded as varints (the first relative to the
//!   segment's start);
//! - a table of the entries' offsets (u64 each), for binary search;
//! - a 48-byte footer: covered range (`from` exclusive, `through` inclusive), entry count, table offset,
//!   and the magic `ISMSTSG2` (`ISMSTSG1` segments held hex-text tokens and no words: rebuilt).
//!
//! Segments tile the `seq` line without gaps: each covers exactly the events indexed in one step. A
//! background thread merges runs of similar-sized neighbours (8 at a time), so a lookup visits a few
//! dozen files at most, each with a binary search over memory-mapped pages.
//!
//! Durability follows the index file's rules: a segment is written to a temporary file, fsynced and
//! renamed before the transaction that advances `indexed_through` commits. At open, segments beyond
//! `indexed_through` are deleted (their batch was never committed) and any inconsistency (a gap, a
//! damaged file) makes the store rebuild the whole index from the events.
//!
//! Postings of events deleted by retention stay until their whole segment is older than the oldest
//! stored event; searches always join candidates with the events table, so they never show.
use std::collections::BinaryHeap;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

const MAGIC: &[u8; 8] = b"ISMSTSG2";
/// The magic of segments with hex-text tokens (before binary tokens and summary words).
const OLD_TEXT_TOKENS_MAGIC: &[u8; 8] = b"ISMSTSG1";
const FOOTER_BYTES: usize = 48;

/// Segments merged in one step; also the size ratio between tiers.
const MERGE_FAN_IN: usize = 8;

/// Segments covering fewer events than this are all in the lowest tier.
const TIER_BASE_EVENTS: i64 = 4_096;

/// Failures of the term index.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// A file operation failed.
    #[error("term index file {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A segment file is not what this version writes.
    #[error("term index segment {path} is damaged: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which events a query on the term index names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TermQuery {
    /// Events holding this token.
    Token(Vec<u8>),
    /// Events holding a token that starts with these bytes.
    Prefix(Vec<u8>),
    /// Events named by every child.
    And(Vec<TermQuery>),
    /// Events named by any child.
    Or(Vec<TermQuery>),
    /// No event.
    Nothing,
}

/// One memory-mapped segment file.
struct Segment {
    path: PathBuf,
    /// Covers seqs `from + 1 ..= through`.
    from: i64,
    through: i64,
    key_count: usize,
    table_offset: usize,
    map: memmap2::Mmap,
}

impl Segment {
    /// Opens a segment found on disk: its footer and every entry of its table are checked, so lookups
    /// can trust them.
    fn open(path: &Path) -> Result<Segment, SegmentError> {
        Segment::open_checking(path, true)
    }

    /// Opens a segment this process has just written and synced: its footer is checked, but its
    /// entries are not read back one by one (the writer laid out the table itself; reading it again
    /// cost a hundredth of ingestion's instructions).
    fn open_written(path: &Path) -> Result<Segment, SegmentError> {
        Segment::open_checking(path, false)
    }

    fn open_checking(path: &Path, check_entries: bool) -> Result<Segment, SegmentError> {
        let file = File::open(path).map_err(io_error(path))?;
        // SAFETY: segment files are written once (to a temporary name, then renamed) and never
        // modified afterwards; they are only ever deleted, which leaves an existing mapping intact.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_error(path))?;
        let damaged = |reason: &str| SegmentError::Damaged {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        if map.len() < FOOTER_BYTES {
            return Err(damaged("shorter than its footer"));
        }
        let footer = &map[map.len() - FOOTER_BYTES..];
        if &footer[40..48] == OLD_TEXT_TOKENS_MAGIC {
            return Err(damaged(
                "written by an older isms (text tokens, no summary words); the index is rebuilt",
            ));
        }
        if &footer[40..48] != MAGIC {
            return Err(damaged("wrong magic number"));
        }
        let word = |index: usize| {
            u64::from_le_bytes(
                footer[index * 8..index * 8 + 8]
                    .try_into()
                    .expect("8 bytes"),
            )
        };
        let (from, through) = (word(0) as i64, word(1) as i64);
        let key_count = word(2) as usize;
        let table_offset = word(3) as usize;
        let table_end = key_count
            .checked_mul(8)
            .and_then(|bytes| bytes.checked_add(table_offset));
        if from > through || table_end != Some(map.len() - FOOTER_BYTES) {
            return Err(damaged("footer does not describe the file"));
        }
        let segment = Segment {
            path: path.to_path_buf(),
            from,
            through,
            key_count,
            table_offset,
            map,
        };
        if check_entries {
            // Entries must lie before the table, in increasing order: checked once, so lookups can
            // trust them.
            let mut previous_end = 0usize;
            for index in 0..key_count {
                let offset = segment.entry_offset(index);
                if offset < previous_end || offset >= table_offset {
                    return Err(damaged("entry table out of order"));
                }
                match segment.try_entry_at(offset) {
                    Some((_, _, end)) if end <= table_offset => previous_end = end,
                    _ => return Err(damaged("entry runs past the table")),
                }
            }
        }
        segment.release_pages();
        Ok(segment)
    }

    /// Drops this process's references to the mapped pages it touched (the operating system's page
    /// cache keeps them): otherwise every page ever read counts in the server's resident memory.
    fn release_pages(&self) {
        // SAFETY: MADV_DONTNEED on a read-only, file-backed shared mapping only discards this
        // process's page table entries; later reads fault the same file contents back in.
        let _ = unsafe {
            self.map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        };
    }

    fn entry_offset(&self, index: usize) -> usize {
        let at = self.table_offset + index * 8;
        u64::from_le_bytes(self.map[at..at + 8].try_into().expect("8 bytes")) as usize
    }

    /// Key, postings, and the offset just past them, for the entry at `offset`.
    fn try_entry_at(&self, offset: usize) -> Option<(&[u8], &[u8], usize)> {
        let bytes = &self.map[..self.table_offset];
        let (key_length, after) = read_varint(bytes, offset)?;
        let key_end = after.checked_add(key_length as usize)?;
        let (postings_length, postings_start) = read_varint(bytes, key_end)?;
        let postings_end = postings_start.checked_add(postings_length as usize)?;
        if postings_end > bytes.len() {
            return None;
        }
        Some((
            &bytes[after..key_end],
            &bytes[postings_start..postings_end],
            postings_end,
        ))
    }

    fn entry(&self, index: usize) -> (&[u8], &[u8]) {
        let (key, postings, _) = self
            .try_entry_at(self.entry_offset(index))
            .expect("entries were checked at open, or laid out by this process");
        (key, postings)
    }

    /// Index of the first key not less than `key`.
    fn lower_bound(&self, key: &[u8]) -> usize {
        let (mut low, mut high) = (0, self.key_count);
        while low < high {
            let middle = (low + high) / 2;
            if self.entry(middle).0 < key {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    /// Appends the seqs of one postings list.
    fn decode_into(&self, postings: &[u8], output: &mut Vec<i64>) {
        let mut seq = self.from;
        let mut position = 0;
        while let Some((delta, next)) = read_varint(postings, position) {
            // Wrapping: postings are trusted after the open checks, but a bad delta must not panic.
            seq = seq.wrapping_add(delta as i64);
            output.push(seq);
            position = next;
        }
    }

    /// Seqs holding `token`, ascending.
    fn token(&self, token: &[u8], output: &mut Vec<i64>) {
        let index = self.lower_bound(token);
        if index < self.key_count {
            let (key, postings) = self.entry(index);
            if key == token {
                self.decode_into(postings, output);
            }
        }
    }

    /// Seqs holding any token starting with `prefix`, ascending and unique.
    fn prefix(&self, prefix: &[u8], output: &mut Vec<i64>) {
        let start = output.len();
        let mut index = self.lower_bound(prefix);
        let mut keys = 0;
        while index < self.key_count {
            let (key, postings) = self.entry(index);
            if !key.starts_with(prefix) {
                break;
            }
            self.decode_into(postings, output);
            keys += 1;
            index += 1;
        }
        if keys > 1 {
            output[start..].sort_unstable();
            let mut unique = output.split_off(start);
            unique.dedup();
            output.extend(unique);
        }
    }

    fn bytes(&self) -> u64 {
        self.map.len() as u64
    }
}

/// The first 16 bytes of `token` as a big-endian number, zero-padded: ordering by it, then by the
/// bytes, is the bytes' order, and it settles most comparisons. Sixteen, not eight: a value token
/// spends its first seven on the kind and the path. Not 32 as two numbers either: the sort got slower,
/// its entries grew by half.
///
/// Read with at most two fixed-size loads (the segment writer takes it of every token of every event;
/// a copy of a variable length was 5% of ingestion's CPU).
fn sort_key(token: &[u8]) -> u128 {
    let length = token.len();
    if let Some(first) = token.first_chunk::<16>() {
        return u128::from_be_bytes(*first);
    }
    if length >= 8 {
        // The first eight bytes, and the last eight (overlapping them) shifted past the overlap.
        let high = u64::from_be_bytes(token[..8].try_into().expect("eight bytes"));
        let low = u64::from_be_bytes(token[length - 8..].try_into().expect("eight bytes"));
        let low = low.checked_shl(8 * (16 - length) as u32).unwrap_or(0);
        return (u128::from(high) << 64) | u128::from(low);
    }
    if length >= 4 {
        let high = u32::from_be_bytes(token[..4].try_into().expect("four bytes"));
        let low = u32::from_be_bytes(token[length - 4..].try_into().expect("four bytes"));
        let low = low.checked_shl(8 * (8 - length) as u32).unwrap_or(0);
        return u128::from((u64::from(high) << 32) | u64::from(low)) << 64;
    }
    let mut bytes = [0u8; 16];
    bytes[..length].copy_from_slice(token);
    u128::from_be_bytes(bytes)
}

/// Sorts (sort key, number) pairs into the byte order of the tokens `token_of` finds by number.
fn sort_tokens<'token>(order: &mut [(u128, u32)], token_of: impl Fn(u32) -> &'token [u8]) {
    order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| token_of(a.1).cmp(token_of(b.1))));
}

fn read_varint(bytes: &[u8], mut position: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = *bytes.get(position)?;
        position += 1;
        if shift > 63 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((value, position));
        }
        shift += 7;
    }
}

fn push_varint(output: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        output.push((value as u8) | 0x80);
        value >>= 7;
    }
    output.push(value as u8);
}

/// Writes a segment's entries, table and footer, streaming, to a file.
struct SegmentWriter {
    output: BufWriter<File>,
    path: PathBuf,
    written: u64,
    offsets: Vec<u64>,
    scratch: Vec<u8>,
    head_scratch: Vec<u8>,
    from: i64,
}

impl SegmentWriter {
    fn create(path: &Path, from: i64) -> Result<SegmentWriter, SegmentError> {
        let file = File::create(path).map_err(io_error(path))?;
        Ok(SegmentWriter {
            output: BufWriter::with_capacity(1 << 20, file),
            path: path.to_path_buf(),
            written: 0,
            offsets: Vec::new(),
            scratch: Vec::new(),
            head_scratch: Vec::new(),
            from,
        })
    }

    /// Adds one key (keys must come in increasing order) with its ascending seqs.
    fn add(&mut self, key: &[u8], seqs: impl IntoIterator<Item = i64>) -> Result<(), SegmentError> {
        let mut postings = std::mem::take(&mut self.scratch);
        postings.clear();
        let mut previous = self.from;
        for seq in seqs {
            push_varint(&mut postings, (seq - previous) as u64);
            previous = seq;
        }
        let mut head = std::mem::take(&mut self.head_scratch);
        head.clear();
        push_varint(&mut head, key.len() as u64);
        head.extend_from_slice(key);
        push_varint(&mut head, postings.len() as u64);
        self.offsets.push(self.written);
        let written = self.write(&head).and_then(|()| self.write(&postings));
        self.scratch = postings;
        self.head_scratch = head;
        written
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), SegmentError> {
        self.output.write_all(bytes).map_err(io_error(&self.path))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Writes the table and footer and fsyncs the file.
    fn finish(mut self, through: i64) -> Result<(), SegmentError> {
        let table_offset = self.written;
        let offsets = std::mem::take(&mut self.offsets);
        for offset in &offsets {
            self.write(&offset.to_le_bytes())?;
        }
        let mut footer = Vec::with_capacity(FOOTER_BYTES);
        for word in [
            self.from as u64,
            through as u64,
            offsets.len() as u64,
            table_offset,
            0,
        ] {
            footer.extend_from_slice(&word.to_le_bytes());
        }
        footer.extend_from_slice(MAGIC);
        self.write(&footer)?;
        let file = self
            .output
            .into_inner()
            .map_err(|error| io_error(&self.path)(error.into_error()))?;
        file.sync_all().map_err(io_error(&self.path))
    }
}

/// A segment written and fsynced under a temporary name, not yet part of the index.
pub(crate) struct PendingSegment {
    temporary: PathBuf,
    from: i64,
    through: i64,
}

impl PendingSegment {
    /// Deletes the segment instead of publishing it.
    pub(crate) fn discard(self) {
        remove_file(&self.temporary);
    }
}

/// The term index of one store: the live segments and the thread that merges them.
pub(crate) struct TermIndex {
    directory: PathBuf,
    live: RwLock<Arc<Vec<Arc<Segment>>>>,
    /// Highest `through` whose index transaction committed; merges never take segments beyond it.
    committed_through: AtomicI64,
    merge_wake: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    /// The segment writer's tables, kept between batches (one batch is written at a time).
    scratch: Mutex<SegmentScratch>,
}

/// Where a distinct token of a batch is: its row, and its byte range in that row's terms.
struct TokenAt {
    row: u32,
    start: u32,
    end: u32,
}

/// A distinct token of a batch in the segment writer's hash table.
struct KnownToken {
    /// Its [`sort_key`]: with its length, the whole token when it is 16 bytes or shorter.
    key: u128,
    hash: u64,
    number: u32,
    length: u32,
}

/// The tables [`TermIndex::write_segment`] builds a segment with, emptied but kept between batches.
#[derive(Default)]
struct SegmentScratch {
    hasher: foldhash::fast::RandomState,
    /// Each distinct token's number, found by its hash.
    numbers: hashbrown::HashTable<KnownToken>,
    /// Each distinct token, by number.
    distinct: Vec<TokenAt>,
    /// (number, seq) of every token of every row, in row order.
    occurrences: Vec<(u32, i64)>,
    /// Where each number's seqs start in `grouped` (one more entry: the end of the last).
    starts: Vec<usize>,
    /// Every row's seq, grouped by token number.
    grouped: Vec<i64>,
    /// (sort key, number) of each distinct token, sorted into byte order.
    order: Vec<(u128, u32)>,
}

/// Occurrences the segment writer's tables may keep room for between batches: with the other tables
/// in proportion, at most 15–20 MB an idle server holds on to. A larger batch (a burst, a rebuild)
/// gives its memory back as soon as it is written.
const RETAINED_SCRATCH_OCCURRENCES: usize = 1 << 18;

impl SegmentScratch {
    /// Empties every table, giving back the memory of an unusually large batch, and lends them out.
    fn reset(&mut self) -> &mut SegmentScratch {
        if self.occurrences.capacity() > RETAINED_SCRATCH_OCCURRENCES {
            let hasher = self.hasher.clone();
            *self = SegmentScratch {
                hasher,
                ..SegmentScratch::default()
            };
        }
        self.numbers.clear();
        self.distinct.clear();
        self.occurrences.clear();
        self.starts.clear();
        self.grouped.clear();
        self.order.clear();
        self
    }
}

/// What [`TermIndex::open`] found.
pub(crate) struct Opened {
    pub index: Arc<TermIndex>,
    /// False when the segments do not cover the indexed events: the whole index must be rebuilt.
    pub consistent: bool,
}

impl TermIndex {
    /// Opens the segments in `directory` (created if missing) for an index whose events are committed
    /// through `indexed_through`; `oldest_stored_seq` is the lowest seq still stored (None: no events).
    pub(crate) fn open(
        directory: &Path,
        indexed_through: i64,
        oldest_stored_seq: Option<i64>,
    ) -> Result<Opened, SegmentError> {
        std::fs::create_dir_all(directory).map_err(io_error(directory))?;
        let mut segments = Vec::new();
        let mut consistent = true;
        for entry in std::fs::read_dir(directory).map_err(io_error(directory))? {
            let path = entry.map_err(io_error(directory))?.path();
            match path.extension().and_then(|extension| extension.to_str()) {
                // A write or merge cut short.
                Some("tmp") => remove_file(&path),
                Some("seg") => match Segment::open(&path) {
                    Ok(segment) => segments.push(segment),
                    Err(error) => {
                        tracing::warn!(%error, "term index segment unreadable; the index will be rebuilt");
                        consistent = false;
                    }
                },
                _ => {}
            }
        }
        // Widest first among equal starts, so a merge's inputs (left behind by a crash before they were
        // deleted) are dropped in favour of its output.
        segments.sort_by(|a, b| a.from.cmp(&b.from).then(b.through.cmp(&a.through)));
        let mut kept: Vec<Segment> = Vec::new();
        for segment in segments {
            let contained = kept
                .last()
                .is_some_and(|last| segment.through <= last.through);
            if contained || segment.through > indexed_through {
                remove_file(&segment.path);
            } else {
                kept.push(segment);
            }
        }
        let contiguous = kept.windows(2).all(|pair| pair[1].from == pair[0].through);
        let covers_stored = match oldest_stored_seq {
            Some(oldest) if oldest <= indexed_through => {
                kept.first().is_some_and(|first| first.from < oldest)
                    && kept
                        .last()
                        .is_some_and(|last| last.through == indexed_through)
            }
            _ => true,
        };
        consistent = consistent && contiguous && covers_stored;
        let index = Arc::new(TermIndex {
            directory: directory.to_path_buf(),
            live: RwLock::new(Arc::new(kept.into_iter().map(Arc::new).collect())),
            committed_through: AtomicI64::new(indexed_through),
            merge_wake: Mutex::new(None),
            scratch: Mutex::default(),
        });
        index.start_merger();
        Ok(Opened { index, consistent })
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Segment>>> {
        self.live
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn replace(&self, change: impl FnOnce(&mut Vec<Arc<Segment>>)) {
        let mut live = self
            .live
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut segments = live.as_ref().clone();
        change(&mut segments);
        *live = Arc::new(segments);
    }

    /// Deletes every segment (before a rebuild).
    pub(crate) fn clear(&self) {
        self.remove_where(|_| true);
        self.committed_through.store(0, Ordering::SeqCst);
    }

    /// Takes the segments `doomed` picks out of the index and deletes their files.
    fn remove_where(&self, doomed: impl Fn(&Segment) -> bool) {
        let mut removed = Vec::new();
        self.replace(|segments| {
            let (drop, keep): (Vec<_>, Vec<_>) =
                segments.drain(..).partition(|segment| doomed(segment));
            *segments = keep;
            removed = drop;
        });
        for segment in removed {
            remove_file(&segment.path);
        }
    }

    /// Builds and fsyncs the segment for events `from + 1 ..= through`; `rows` are their seqs (ascending)
    /// with their space-separated terms.
    pub(crate) fn write_segment(
        &self,
        rows: &[(i64, Arc<[u8]>)],
        from: i64,
        through: i64,
    ) -> Result<PendingSegment, SegmentError> {
        // Each distinct token gets a number (keys come from event values: the hasher is seeded at random
        // and its outputs are never shown, so crafted values cannot aim at one bucket; foldhash, as
        // SipHash cost a tenth of this function); occurrences are (number, seq) pairs, then grouped by
        // number with a counting sort, which keeps each group's seqs ascending. No list per token is
        // grown, and only distinct tokens are sorted. The tables are kept between batches: allocated
        // afresh, their growth was where most of this function's page faults came from.
        let mut scratch = self
            .scratch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let SegmentScratch {
            hasher,
            numbers,
            distinct,
            occurrences,
            starts,
            grouped,
            order,
        } = scratch.reset();
        let token_at = |at: &TokenAt| -> &[u8] {
            &rows[at.row as usize].1[at.start as usize..at.end as usize]
        };
        for (row, (seq, terms)) in rows.iter().enumerate() {
            for token in crate::terms::tokens(terms) {
                let hash = hasher.hash_one(token);
                let key = sort_key(token);
                let length = token.len() as u32;
                // A token of up to 16 bytes is its key and length: most repeats are found without
                // reading the row they first came from.
                let number = match numbers.entry(
                    hash,
                    |known| {
                        known.key == key
                            && known.length == length
                            && (token.len() <= 16
                                || token_at(&distinct[known.number as usize]) == token)
                    },
                    |known| known.hash,
                ) {
                    hashbrown::hash_table::Entry::Occupied(found) => found.get().number,
                    hashbrown::hash_table::Entry::Vacant(vacant) => {
                        let number = distinct.len() as u32;
                        // Offsets into this row's terms (a token is a subslice of them).
                        let start = token.as_ptr() as usize - terms.as_ptr() as usize;
                        distinct.push(TokenAt {
                            row: row as u32,
                            start: start as u32,
                            end: (start + token.len()) as u32,
                        });
                        vacant.insert(KnownToken {
                            key,
                            hash,
                            number,
                            length,
                        });
                        number
                    }
                };
                occurrences.push((number, *seq));
            }
        }
        starts.resize(distinct.len() + 1, 0);
        for (number, _) in occurrences.iter() {
            starts[*number as usize + 1] += 1;
        }
        for index in 1..starts.len() {
            starts[index] += starts[index - 1];
        }
        grouped.resize(occurrences.len(), 0);
        // Each group's next free place: the group's start, moved along (restored below).
        for (number, seq) in occurrences.iter() {
            let place = &mut starts[*number as usize];
            grouped[*place] = *seq;
            *place += 1;
        }
        // Now starts[n] is where group n ends, which is where group n + 1 starts.
        starts.rotate_right(1);
        starts[0] = 0;
        order.extend(numbers.iter().map(|known| (known.key, known.number)));
        sort_tokens(order, |number| token_at(&distinct[number as usize]));
        let temporary = self
            .directory
            .join(format!("{:020}-{:020}.tmp", from + 1, through));
        let written = SegmentWriter::create(&temporary, from).and_then(|mut writer| {
            for &(_, number) in order.iter() {
                let token = token_at(&distinct[number as usize]);
                let seqs = &grouped[starts[number as usize]..starts[number as usize + 1]];
                // A token twice in one event (a repeated word, equal array members) is one posting.
                let mut previous = None;
                writer.add(
                    token,
                    seqs.iter().copied().filter(|seq| {
                        let fresh = previous != Some(*seq);
                        previous = Some(*seq);
                        fresh
                    }),
                )?;
            }
            writer.finish(through)
        });
        // Emptied now, so a large batch's memory does not wait for the next one.
        scratch.reset();
        if let Err(error) = written {
            // A retry covers a different range: this file would stay until the next open.
            remove_file(&temporary);
            return Err(error);
        }
        Ok(PendingSegment {
            temporary,
            from,
            through,
        })
    }

    /// Makes a written segment part of the index (before its index transaction commits).
    pub(crate) fn publish(&self, pending: PendingSegment) -> Result<(), SegmentError> {
        let path = self.final_path(pending.from, pending.through);
        std::fs::rename(&pending.temporary, &path).map_err(io_error(&path))?;
        sync_directory(&self.directory);
        let segment = Arc::new(Segment::open_written(&path)?);
        self.replace(|segments| segments.push(segment));
        Ok(())
    }

    /// Records that the index transaction covering events through `through` committed.
    pub(crate) fn committed(&self, through: i64) {
        self.committed_through.store(through, Ordering::SeqCst);
        if let Some(wake) = self
            .merge_wake
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
        {
            let _ = wake.send(());
        }
    }

    /// Drops segments beyond `through` (their index transaction failed).
    pub(crate) fn remove_after(&self, through: i64) {
        self.remove_where(|segment| segment.through > through);
    }

    /// Drops segments whose events are all older than `oldest_stored_seq` (deleted by retention).
    pub(crate) fn remove_before(&self, oldest_stored_seq: i64) {
        self.remove_where(|segment| segment.through < oldest_stored_seq);
    }

    /// Bytes of all live segment files.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.snapshot().iter().map(|segment| segment.bytes()).sum()
    }

    /// Number of live segments.
    pub(crate) fn segment_count(&self) -> usize {
        self.snapshot().len()
    }

    /// The seqs a query names, ascending and unique.
    pub(crate) fn lookup(&self, query: &TermQuery) -> Vec<i64> {
        let segments = self.snapshot();
        let seqs = evaluate(&segments, query);
        for segment in segments.iter() {
            segment.release_pages();
        }
        seqs
    }

    fn final_path(&self, from: i64, through: i64) -> PathBuf {
        self.directory
            .join(format!("{:020}-{:020}.seg", from + 1, through))
    }

    fn start_merger(self: &Arc<Self>) {
        let (wake, woken) = std::sync::mpsc::channel::<()>();
        *self
            .merge_wake
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(wake);
        let index: Weak<TermIndex> = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("isms-term-merge".into())
            .spawn(move || {
                // Ends when the index is dropped (its sender goes with it).
                while woken.recv().is_ok() {
                    while woken.try_recv().is_ok() {}
                    let Some(index) = index.upgrade() else { return };
                    loop {
                        match index.merge_step() {
                            Ok(true) => continue,
                            Ok(false) => break,
                            Err(error) => {
                                tracing::error!(%error, "term index merge failed; will retry after the next batch");
                                break;
                            }
                        }
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "could not start the term index merger; segments will not be merged");
        }
    }

    /// Merges one run of similar segments, if there is one. Returns whether it merged.
    pub(crate) fn merge_step(&self) -> Result<bool, SegmentError> {
        let committed = self.committed_through.load(Ordering::SeqCst);
        let segments = self.snapshot();
        let eligible: Vec<&Arc<Segment>> = segments
            .iter()
            .filter(|segment| segment.through <= committed)
            .collect();
        let Some(run) = pick_merge_run(&eligible) else {
            return Ok(false);
        };
        let inputs: Vec<Arc<Segment>> = run.iter().map(|segment| (*segment).clone()).collect();
        let from = inputs[0].from;
        let through = inputs[inputs.len() - 1].through;
        let started = std::time::Instant::now();
        let temporary = self
            .directory
            .join(format!("{:020}-{:020}.tmp", from + 1, through));
        if let Err(error) = merge_into(&inputs, &temporary, from, through) {
            remove_file(&temporary);
            return Err(error);
        }
        let path = self.final_path(from, through);
        std::fs::rename(&temporary, &path).map_err(io_error(&path))?;
        sync_directory(&self.directory);
        let merged = Arc::new(Segment::open_written(&path)?);
        let mut swapped = false;
        self.replace(|segments| {
            let first = segments
                .iter()
                .position(|segment| Arc::ptr_eq(segment, &inputs[0]));
            if let Some(first) = first
                && segments.len() >= first + inputs.len()
                && segments[first..first + inputs.len()]
                    .iter()
                    .zip(&inputs)
                    .all(|(live, input)| Arc::ptr_eq(live, input))
            {
                segments.splice(first..first + inputs.len(), [merged.clone()]);
                swapped = true;
            }
        });
        if !swapped {
            // Retention dropped some inputs meanwhile: their events are gone, and so is the merge.
            remove_file(&merged.path);
            return Ok(false);
        }
        for input in &inputs {
            remove_file(&input.path);
        }
        tracing::debug!(
            segments = inputs.len(),
            from_seq = from + 1,
            through_seq = through,
            millis = started.elapsed().as_millis() as u64,
            "term index segments merged"
        );
        Ok(true)
    }
}

/// The first run of [`MERGE_FAN_IN`] neighbours in the same size tier (oldest first).
fn pick_merge_run<'a>(segments: &[&'a Arc<Segment>]) -> Option<Vec<&'a Arc<Segment>>> {
    let tier = |segment: &Segment| {
        let mut events = (segment.through - segment.from) / TIER_BASE_EVENTS;
        let mut tier = 0;
        while events > 0 {
            events /= MERGE_FAN_IN as i64;
            tier += 1;
        }
        tier
    };
    let mut start = 0;
    for index in 1..=segments.len() {
        let run_ends = index == segments.len()
            || tier(segments[index]) != tier(segments[start])
            || segments[index].from != segments[index - 1].through;
        if run_ends {
            if index - start >= MERGE_FAN_IN {
                return Some(segments[start..start + MERGE_FAN_IN].to_vec());
            }
            start = index;
        }
    }
    None
}

/// An input's next key in a merge: its sort key, bytes, input number and entry number (the heap is a
/// max-heap, hence `Reverse`).
type MergeHead<'a> = std::cmp::Reverse<(u128, &'a [u8], usize, usize)>;

/// Writes the union of `inputs` (neighbours, oldest first) as one fsynced segment.
fn merge_into(
    inputs: &[Arc<Segment>],
    path: &Path,
    from: i64,
    through: i64,
) -> Result<(), SegmentError> {
    // Smallest key first; equal keys in input order, so seqs stay ascending. Keys are compared by
    // their sort keys first (as when a segment is written), their bytes only when those tie.
    let mut heap: BinaryHeap<MergeHead<'_>> = BinaryHeap::new();
    let head = |input: usize, index: usize| {
        let key = inputs[input].entry(index).0;
        std::cmp::Reverse((sort_key(key), key, input, index))
    };
    for (input, segment) in inputs.iter().enumerate() {
        if segment.key_count > 0 {
            heap.push(head(input, 0));
        }
    }
    let mut writer = SegmentWriter::create(path, from)?;
    let mut seqs = Vec::new();
    while let Some(std::cmp::Reverse((_, key, input, index))) = heap.pop() {
        seqs.clear();
        let mut next = Some((input, index));
        while let Some((input, index)) = next {
            let segment = &inputs[input];
            segment.decode_into(segment.entry(index).1, &mut seqs);
            if index + 1 < segment.key_count {
                heap.push(head(input, index + 1));
            }
            next = match heap.peek() {
                Some(std::cmp::Reverse((_, next_key, next_input, next_index)))
                    if *next_key == key =>
                {
                    let found = (*next_input, *next_index);
                    heap.pop();
                    Some(found)
                }
                _ => None,
            };
        }
        writer.add(key, seqs.iter().copied())?;
    }
    writer.finish(through)
}

fn evaluate(segments: &[Arc<Segment>], query: &TermQuery) -> Vec<i64> {
    match query {
        TermQuery::Nothing => Vec::new(),
        TermQuery::Token(token) => {
            let mut output = Vec::new();
            for segment in segments {
                segment.token(token, &mut output);
            }
            output
        }
        TermQuery::Prefix(prefix) => {
            let mut output = Vec::new();
            for segment in segments {
                segment.prefix(prefix, &mut output);
            }
            output
        }
        TermQuery::And(children) => {
            let mut sets: Vec<Vec<i64>> = children
                .iter()
                .map(|child| evaluate(segments, child))
                .collect();
            sets.sort_by_key(Vec::len);
            let mut sets = sets.into_iter();
            let Some(mut result) = sets.next() else {
                return Vec::new();
            };
            for set in sets {
                if result.is_empty() {
                    break;
                }
                result = intersect(&result, &set);
            }
            result
        }
        TermQuery::Or(children) => {
            let mut result: Vec<i64> = Vec::new();
            for child in children {
                result = union(&result, &evaluate(segments, child));
            }
            result
        }
    }
}

fn intersect(small: &[i64], large: &[i64]) -> Vec<i64> {
    let mut output = Vec::with_capacity(small.len());
    let mut position = 0;
    for value in small {
        // Gallop: skip ahead in the large list without visiting every element.
        let rest = &large[position..];
        let found = rest.partition_point(|candidate| candidate < value);
        position += found;
        if large.get(position) == Some(value) {
            output.push(*value);
        }
    }
    output
}

fn union(a: &[i64], b: &[i64]) -> Vec<i64> {
    let mut output = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                output.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                output.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                output.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    output.extend_from_slice(&a[i..]);
    output.extend_from_slice(&b[j..]);
    output
}

fn remove_file(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(%error, path = %path.display(), "could not delete a term index file");
    }
}

fn sync_directory(directory: &Path) {
    if let Ok(handle) = File::open(directory) {
        let _ = handle.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    fn rows(range: std::ops::RangeInclusive<i64>) -> Vec<(i64, Arc<[u8]>)> {
        range
            .map(|seq| {
                let mut terms = Vec::new();
                for token in [
                    "all".to_string(),
                    format!("m{}", seq % 3),
                    format!("k{seq}"),
                    format!("pre{}", seq % 10),
                ] {
                    terms.push(token.len() as u8);
                    terms.extend_from_slice(token.as_bytes());
                }
                (seq, Arc::from(terms))
            })
            .collect()
    }

    fn add(index: &TermIndex, from: i64, through: i64) {
        let pending = index
            .write_segment(&rows(from + 1..=through), from, through)
            .unwrap();
        index.publish(pending).unwrap();
        index.committed_through.store(through, Ordering::SeqCst);
    }

    fn expected(range: std::ops::RangeInclusive<i64>, keep: impl Fn(i64) -> bool) -> Vec<i64> {
        range.filter(|seq| keep(*seq)).collect()
    }

    #[test]
    fn ordering_by_sort_key_then_bytes_is_byte_order() {
        let tokens: Vec<&[u8]> = vec![
            b"ab",
            b"ab\0",
            b"ab\0x",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefghi",
            b"abcdefgg\xff",
            b"",
            b"\0",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            b"b",
            b"a\xff",
            b"0123456789abcdef",
            b"0123456789abcdef\0",
            b"0123456789abcdeg",
            b"0123456789abcdee\xff\xff",
            b"0123456789abcdef0123456789abcdef",
            b"0123456789abcdef0123456789abcdef\0",
            b"0123456789abcdef0123456789abcdeg",
            b"0123456789abcdef0123456789abcdee\xff",
            b"0123456789abcdef0",
            b"0123456789abcdef\xff",
        ];
        let mut expected = tokens.clone();
        expected.sort();
        let mut keyed: Vec<(u128, u32)> = (0..tokens.len() as u32)
            .map(|number| (sort_key(tokens[number as usize]), number))
            .collect();
        sort_tokens(&mut keyed, |number| tokens[number as usize]);
        let sorted: Vec<&[u8]> = keyed
            .into_iter()
            .map(|(_, number)| tokens[number as usize])
            .collect();
        assert_eq!(sorted, expected);
    }

    proptest::proptest! {
        #[test]
        fn sorted_tokens_are_in_byte_order(
            // Few distinct bytes and lengths around 16 and 32, so keys often tie.
            tokens in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec![0u8, 1, b'a', 0xff]), 0..40),
                0..60,
            )
        ) {
            let mut expected: Vec<&[u8]> = tokens.iter().map(Vec::as_slice).collect();
            expected.sort();
            let mut keyed: Vec<(u128, u32)> = (0..tokens.len() as u32)
                .map(|number| (sort_key(&tokens[number as usize]), number))
                .collect();
            sort_tokens(&mut keyed, |number| tokens[number as usize].as_slice());
            let sorted: Vec<&[u8]> = keyed
                .into_iter()
                .map(|(_, number)| tokens[number as usize].as_slice())
                .collect();
            proptest::prop_assert_eq!(sorted, expected);
        }
    }

    proptest::proptest! {
        #[test]
        fn the_sort_key_is_the_first_sixteen_bytes_zero_padded(
            token in proptest::collection::vec(proptest::num::u8::ANY, 0..40)
        ) {
            let mut padded = [0u8; 16];
            let length = token.len().min(16);
            padded[..length].copy_from_slice(&token[..length]);
            proptest::prop_assert_eq!(sort_key(&token), u128::from_be_bytes(padded));
        }
    }

    proptest::proptest! {
        #[test]
        fn every_token_finds_exactly_the_rows_that_hold_it(
            // Few distinct bytes and lengths around 16, so tokens share their first 16 bytes or
            // differ only in trailing zero bytes; two batches, so the writer's kept tables are reused.
            batches in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::collection::vec(
                        (
                            proptest::sample::select(vec![0usize, 15, 16]),
                            proptest::collection::vec(
                                proptest::sample::select(vec![0u8, b'a', 0xff]),
                                0..4,
                            ),
                        )
                            .prop_map(|(shared, tail)| [vec![b'a'; shared], tail].concat()),
                        0..6,
                    ),
                    1..20,
                ),
                2..3,
            )
        ) {
            let directory = tempfile::tempdir().unwrap();
            let index = TermIndex::open(directory.path(), 0, None).unwrap().index;
            *index.merge_wake.lock().unwrap() = None;
            let mut holders: std::collections::BTreeMap<Vec<u8>, Vec<i64>> = Default::default();
            let mut seq = 0;
            for batch in &batches {
                let from = seq;
                let mut rows = Vec::new();
                for tokens in batch {
                    seq += 1;
                    let mut terms = Vec::new();
                    for token in tokens {
                        terms.push(token.len() as u8);
                        terms.extend_from_slice(token);
                        let seqs = holders.entry(token.clone()).or_default();
                        if seqs.last() != Some(&seq) {
                            seqs.push(seq);
                        }
                    }
                    rows.push((seq, Arc::from(terms)));
                }
                let pending = index.write_segment(&rows, from, seq).unwrap();
                index.publish(pending).unwrap();
                index.committed_through.store(seq, Ordering::SeqCst);
            }
            for (token, seqs) in &holders {
                proptest::prop_assert_eq!(&index.lookup(&TermQuery::Token(token.clone())), seqs);
            }
        }
    }

    #[test]
    fn lookups_find_tokens_prefixes_and_combinations_across_merges() {
        let directory = tempfile::tempdir().unwrap();
        let opened = TermIndex::open(directory.path(), 0, None).unwrap();
        assert!(opened.consistent);
        let index = opened.index;
        // Stop the merger from racing the explicit merges below.
        *index.merge_wake.lock().unwrap() = None;
        for batch in 0..20 {
            add(&index, batch * 50, batch * 50 + 50);
        }
        let check = |index: &TermIndex| {
            assert_eq!(
                index.lookup(&TermQuery::Token("m1".as_bytes().to_vec())),
                expected(1..=1000, |seq| seq % 3 == 1)
            );
            assert_eq!(
                index.lookup(&TermQuery::Token("k777".as_bytes().to_vec())),
                vec![777]
            );
            assert_eq!(
                index.lookup(&TermQuery::Token("k1001".as_bytes().to_vec())),
                Vec::<i64>::new()
            );
            assert_eq!(
                index.lookup(&TermQuery::Prefix("k99".as_bytes().to_vec())),
                expected(1..=1000, |seq| seq.to_string().starts_with("99"))
            );
            assert_eq!(
                index.lookup(&TermQuery::And(vec![
                    TermQuery::Token("m0".as_bytes().to_vec()),
                    TermQuery::Token("pre5".as_bytes().to_vec())
                ])),
                expected(1..=1000, |seq| seq % 3 == 0 && seq % 10 == 5)
            );
            assert_eq!(
                index.lookup(&TermQuery::Or(vec![
                    TermQuery::Token("k5".as_bytes().to_vec()),
                    TermQuery::Token("k900".as_bytes().to_vec()),
                    TermQuery::Nothing
                ])),
                vec![5, 900]
            );
        };
        check(&index);
        let mut merges = 0;
        while index.merge_step().unwrap() {
            merges += 1;
        }
        assert_eq!(merges, 2, "20 small segments: two runs of 8 merge");
        assert_eq!(index.segment_count(), 6);
        check(&index);
    }

    #[test]
    fn reopening_drops_uncommitted_and_superseded_segments_and_detects_gaps() {
        let directory = tempfile::tempdir().unwrap();
        {
            let index = TermIndex::open(directory.path(), 0, None).unwrap().index;
            *index.merge_wake.lock().unwrap() = None;
            for batch in 0..8 {
                add(&index, batch * 10, batch * 10 + 10);
            }
            // A merge whose inputs were not deleted (a crash in between): copy them back.
            let inputs: Vec<PathBuf> = index.snapshot().iter().map(|s| s.path.clone()).collect();
            let saved: Vec<Vec<u8>> = inputs.iter().map(|p| std::fs::read(p).unwrap()).collect();
            assert!(index.merge_step().unwrap());
            for (path, bytes) in inputs.iter().zip(saved) {
                std::fs::write(path, bytes).unwrap();
            }
            // A batch whose transaction never committed.
            add(&index, 80, 90);
            std::fs::write(directory.path().join("junk.tmp"), b"x").unwrap();
        }
        let opened = TermIndex::open(directory.path(), 80, Some(1)).unwrap();
        assert!(opened.consistent);
        assert_eq!(opened.index.segment_count(), 1);
        assert_eq!(
            opened
                .index
                .lookup(&TermQuery::Token("all".as_bytes().to_vec()))
                .len(),
            80
        );
        assert!(!directory.path().join("junk.tmp").exists());
        drop(opened);
        // Claims more indexed events than the segments hold: rebuild needed.
        let opened = TermIndex::open(directory.path(), 100, Some(1)).unwrap();
        assert!(!opened.consistent);
    }

    #[test]
    fn a_damaged_segment_is_reported_not_read() {
        let directory = tempfile::tempdir().unwrap();
        {
            let index = TermIndex::open(directory.path(), 0, None).unwrap().index;
            add(&index, 0, 10);
        }
        let path = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|e| e == "seg"))
            .unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let length = bytes.len();
        bytes[length - FOOTER_BYTES + 24] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            Segment::open(&path),
            Err(SegmentError::Damaged { .. })
        ));
        assert!(
            !TermIndex::open(directory.path(), 10, Some(1))
                .unwrap()
                .consistent
        );
    }
}
