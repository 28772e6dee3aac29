//! Tailing log files into the store, through rotation and restarts, losing nothing that was written.
//!
//! Why it is shaped this way:
//!
//! - **Polling, not notifications.** Every `files.poll_interval_milliseconds` each pattern is expanded
//!   and each file is `stat`ed. inotify misses files on network mounts and after its queue overflows;
//!   a poll costs a few system calls per file and cannot miss a rotation.
//! - **Files are known by device and inode, not by name.** Rotation by rename + create moves the old
//!   inode to `auth.log.1` and puts a new one at `auth.log`: the old one is read to its end (the
//!   daemon may still write to it until it reopens) and let go once it has been idle for
//!   [`ROTATED_GRACE`]; the new one is read from its start. A file that shrinks below the offset read
//!   (copytruncate) is read again from its start.
//! - **Offsets move only after the store said yes.** Only whole lines are read (a line still being
//!   written waits for its newline); the lines of one poll are appended as one batch; then the new
//!   offsets are written to `file-offsets.json` in the data directory (written to a temporary file,
//!   fsynced, renamed). The offset saved is the last one at which the file's converter held nothing
//!   back (audit records wait there for the rest of their event), so a restart or a failed append
//!   reads those lines again rather than losing them. After a crash a few lines may be stored twice,
//!   never lost. On restart a file whose inode moved while isms was down is found by inode in the
//!   same directory and finished; a saved place also records a hash of the file's first kilobyte, so
//!   an inode freed and reused by another file meanwhile is read from its start.
//! - **Bounded.** At most [`READ_BUDGET_BYTES`] per file per poll; a line longer than
//!   `files.max_line_bytes` is skipped to its newline, counted (`isms_files_dropped_total`) and logged
//!   at a bounded rate.
use std::collections::HashMap;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use isms_config::{FileStart, FilesConfig};
use isms_decode::LineEvent;
use isms_event::{Delivery, Origin};
use isms_store::Store;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::log_budget::LogBudget;

/// Most bytes read from one file in one poll, so one busy file cannot starve the others.
pub const READ_BUDGET_BYTES: u64 = 4 * 1024 * 1024;

/// Most bytes read from all files in one poll: one append's worth, however many files match.
pub const POLL_BUDGET_BYTES: u64 = 16 * 1024 * 1024;

/// How long a file rotated away (its name now another file) is kept open after its last new line.
pub const ROTATED_GRACE: Duration = Duration::from_secs(5);

/// The name of the offsets file in the data directory.
pub const CHECKPOINT_FILE: &str = "file-offsets.json";

static FILE_PROBLEMS: LogBudget = LogBudget::new(10, Duration::from_secs(60));

/// Turns the lines of one file into events. One per file: some formats join several lines into
/// one event (audit records), so the converter keeps state between lines.
pub trait LineConverter: Send {
    /// The events completed by this line, read at `received` (raw MozDef-shaped JSON, or a text
    /// line's typed fields).
    fn push_line(&mut self, line: &str, received: Timestamp) -> Vec<LineEvent>;
    /// Whether lines pushed earlier still wait for the rest of their event.
    fn holds_lines(&self) -> bool {
        false
    }
    /// Events held long enough before `now` to be given up waiting for (a quiet source).
    fn expire(&mut self, _now: Timestamp) -> Vec<LineEvent> {
        Vec::new()
    }
    /// Everything still held, when the file is let go.
    fn finish(&mut self) -> Vec<LineEvent> {
        Vec::new()
    }
}

/// Makes a [`LineConverter`] for each file tailed.
pub type ConverterFactory = Arc<dyn Fn() -> Box<dyn LineConverter> + Send + Sync>;

/// The converter of every tailed file: [`isms_decode::LineDecoder`] (syslog lines with the decoders,
/// JSON records of Suricata and Zeek, audit records joined into events).
pub struct DecodingConverter {
    lines: isms_decode::LineDecoder,
}

impl DecodingConverter {
    /// A converter with `decoders`, reading times without a zone in `time_zone`.
    pub fn new(
        decoders: Arc<isms_decode::Decoders>,
        time_zone: jiff::tz::TimeZone,
    ) -> DecodingConverter {
        let context = isms_syslog::ParseContext {
            received: Timestamp::now(),
            time_zone,
        };
        DecodingConverter {
            lines: isms_decode::LineDecoder::new(decoders, context),
        }
    }
}

impl LineConverter for DecodingConverter {
    fn push_line(&mut self, line: &str, received: Timestamp) -> Vec<LineEvent> {
        self.lines.set_received(received);
        self.lines.push_line_typed(line)
    }

    fn holds_lines(&self) -> bool {
        self.lines.holds_lines()
    }

    fn expire(&mut self, now: Timestamp) -> Vec<LineEvent> {
        self.lines
            .expire(now)
            .into_iter()
            .map(LineEvent::Raw)
            .collect()
    }

    fn finish(&mut self) -> Vec<LineEvent> {
        self.lines
            .finish()
            .into_iter()
            .map(LineEvent::Raw)
            .collect()
    }
}

/// Why tailing could not start.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// `files.paths` did not parse.
    #[error("files.paths: {0}")]
    Patterns(String),
    /// The offsets file exists but cannot be read.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The offsets file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// One file's place, as saved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct SavedOffset {
    path: PathBuf,
    device: u64,
    inode: u64,
    offset: u64,
    /// The file's first bytes (up to [`FINGERPRINT_BYTES`]), hashed: an inode freed and reused by
    /// another file while isms was down does not pass for the file it had been.
    #[serde(default)]
    fingerprint: Option<Fingerprint>,
}

/// How many of a file's first bytes identify it along with its inode.
const FINGERPRINT_BYTES: u64 = 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Fingerprint {
    /// How many bytes were hashed (fewer than [`FINGERPRINT_BYTES`] in a short file).
    length: u64,
    /// Their BLAKE3 hash, hex.
    blake3: String,
}

/// The fingerprint of the first `length` bytes of `file`, if it has that many.
fn fingerprint(file: &std::fs::File, length: u64) -> Option<Fingerprint> {
    let mut bytes = vec![0u8; length as usize];
    file.read_exact_at(&mut bytes, 0).ok()?;
    Some(Fingerprint {
        length,
        blake3: blake3::hash(&bytes).to_hex().to_string(),
    })
}

/// Whether `file` starts as the saved file did (a saved place without a fingerprint is trusted).
fn same_file(saved: &SavedOffset, file: &std::fs::File) -> bool {
    match &saved.fingerprint {
        None => true,
        Some(expected) => fingerprint(file, expected.length).as_ref() == Some(expected),
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedOffsets {
    files: Vec<SavedOffset>,
}

type FileKey = (u64, u64);

/// A file being read.
struct TailedFile {
    /// The name it was found under (after a rotation, the name it had).
    path: PathBuf,
    file: std::fs::File,
    /// Bytes before this are read and converted.
    offset: u64,
    /// Bytes before this are stored with nothing held back in the converter: where a restart or a
    /// failed append resumes.
    resume_offset: u64,
    /// Inside a line longer than the limit: skip to its newline.
    skipping_long_line: bool,
    converter: Box<dyn LineConverter>,
    /// When a new line was last read (for letting go of rotated files).
    last_growth: Instant,
    /// Whether the path still names this file.
    current: bool,
    /// When the file was first seen no longer under its name.
    rotated_at: Option<Instant>,
    /// The hash of its first bytes as last saved (recomputed while it covers fewer than
    /// [`FINGERPRINT_BYTES`], and after a truncation).
    fingerprint: Option<Fingerprint>,
}

impl TailedFile {
    /// The fingerprint to save: of the first `min(resume offset, FINGERPRINT_BYTES)` bytes.
    fn fingerprint(&mut self) -> Option<Fingerprint> {
        let length = self.resume_offset.min(FINGERPRINT_BYTES);
        if length == 0 {
            self.fingerprint = None;
        } else if self
            .fingerprint
            .as_ref()
            .is_none_or(|print| print.length != length)
        {
            self.fingerprint = fingerprint(&self.file, length);
        }
        self.fingerprint.clone()
    }
}

/// Tails the configured files into the store until the task is dropped.
pub struct Tailer {
    patterns: Vec<PathBuf>,
    start_at: FileStart,
    max_line_bytes: usize,
    checkpoint_path: PathBuf,
    store: Arc<dyn Store>,
    converters: ConverterFactory,
    files: HashMap<FileKey, TailedFile>,
    /// Offsets from the last run, for files not yet found again.
    saved: HashMap<FileKey, SavedOffset>,
    /// No offsets file existed: the first start of tailing in this data directory.
    first_start: bool,
    /// The offsets file's text as last written, so an unchanged poll writes nothing.
    last_saved: Vec<u8>,
}

impl Tailer {
    /// Prepares tailing: parses the patterns, reads the saved offsets.
    pub fn new(
        config: &FilesConfig,
        data_dir: &Path,
        store: Arc<dyn Store>,
        converters: ConverterFactory,
    ) -> Result<Tailer, FilesError> {
        let patterns =
            isms_config::parse_file_patterns(&config.paths).map_err(FilesError::Patterns)?;
        let checkpoint_path = data_dir.join(CHECKPOINT_FILE);
        let (saved, first_start) = match std::fs::read(&checkpoint_path) {
            Ok(bytes) => {
                let saved: SavedOffsets =
                    serde_json::from_slice(&bytes).map_err(|error| FilesError::Checkpoint {
                        path: checkpoint_path.clone(),
                        reason: format!(
                            "not a file of offsets ({error}); move it away to start over"
                        ),
                    })?;
                let saved = saved
                    .files
                    .into_iter()
                    .map(|offset| ((offset.device, offset.inode), offset))
                    .collect();
                (saved, false)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => (HashMap::new(), true),
            Err(error) => {
                return Err(FilesError::Checkpoint {
                    path: checkpoint_path,
                    reason: error.to_string(),
                });
            }
        };
        Ok(Tailer {
            patterns,
            start_at: config.start_at,
            max_line_bytes: config.max_line_bytes as usize,
            checkpoint_path,
            store,
            converters,
            files: HashMap::new(),
            saved,
            first_start,
            last_saved: Vec::new(),
        })
    }

    /// Starts tailing on a thread of its own (file reads block); appends go through `runtime`.
    pub fn spawn(
        mut self,
        interval: Duration,
        runtime: tokio::runtime::Handle,
    ) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("isms-files".to_owned())
            .spawn(move || {
                loop {
                    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.poll_once(&runtime);
                    }));
                    if polled.is_err() {
                        // A bug met on some line must not end tailing for good; the offsets saved
                        // are from before the poll, so its lines are read again.
                        metrics::counter!("isms_files_poll_panics_total").increment(1);
                        tracing::error!(
                            "file tailing poll panicked; going on from the saved offsets"
                        );
                        self.files.clear();
                        self.reload_saved();
                    }
                    std::thread::sleep(interval);
                }
            })
            .map(|_| ())
    }

    /// One round: finds the files, reads what is new, stores it, saves the offsets. Returns the
    /// number of events stored.
    pub fn poll_once(&mut self, runtime: &tokio::runtime::Handle) -> usize {
        self.discover();
        let received = Timestamp::now();
        let mut events = Vec::new();
        let mut advanced: Vec<(FileKey, ReadOutcome)> = Vec::new();
        let mut finished: Vec<FileKey> = Vec::new();
        let mut budget = POLL_BUDGET_BYTES;
        for (key, tailed) in &mut self.files {
            let before = (
                tailed.offset,
                tailed.skipping_long_line,
                tailed.resume_offset,
            );
            let mut raw_events = Vec::new();
            let mut read = read_new_lines(
                tailed,
                self.max_line_bytes,
                received,
                budget.min(READ_BUDGET_BYTES),
                &mut raw_events,
            );
            budget = budget.saturating_sub(read.bytes_read);
            if read.bytes_read == 0 {
                // A quiet file: audit events still waiting for their last record are given up on
                // once old enough (while lines come, their own times move the assembler on).
                raw_events.extend(tailed.converter.expire(received));
            }
            // A file rotated away, idle for the grace period and read to its end (but for a last
            // line its writer never ended): that line and what the converter holds are its last.
            let let_go = tailed
                .rotated_at
                .is_some_and(|rotated| rotated.elapsed() >= ROTATED_GRACE)
                && tailed.last_growth.elapsed() >= ROTATED_GRACE
                && read.at_end;
            if let_go {
                if let Some(last_line) = read.unterminated.take() {
                    raw_events.extend(tailed.converter.push_line(&last_line, received));
                }
                raw_events.extend(tailed.converter.finish());
                read.new_offset = read.size;
                finished.push(*key);
            }
            if !tailed.converter.holds_lines() {
                read.resume_offset = read.new_offset;
            }
            if !raw_events.is_empty() {
                events.extend(normalize_file_events(raw_events, &tailed.path, received));
            }
            if (read.new_offset, read.skipping, read.resume_offset) != before || let_go {
                advanced.push((*key, read));
            }
        }
        let count = events.len();
        if !events.is_empty() {
            if let Err(error) = runtime.block_on(self.store.append(events)) {
                if let Some(held_back) = FILE_PROBLEMS.allow() {
                    tracing::error!(%error, events = count, held_back, "file lines not stored; read again at the next poll");
                }
                // Everything after each file's resume offset is read again, by converters that
                // start afresh (they may have held, or just given up, lines of earlier polls).
                for tailed in self.files.values_mut() {
                    if tailed.resume_offset != tailed.offset {
                        // A resume offset is always just after a newline.
                        tailed.offset = tailed.resume_offset;
                        tailed.skipping_long_line = false;
                    }
                    tailed.converter = (self.converters)();
                }
                return 0;
            }
            metrics::counter!("isms_files_events_total").increment(count as u64);
        }
        for (key, read) in advanced {
            if let Some(tailed) = self.files.get_mut(&key) {
                if read.new_offset != tailed.offset {
                    tailed.last_growth = Instant::now();
                }
                tailed.offset = read.new_offset;
                tailed.resume_offset = read.resume_offset;
                tailed.skipping_long_line = read.skipping;
            }
        }
        for key in finished {
            if let Some(tailed) = self.files.remove(&key) {
                metrics::counter!("isms_files_rotations_total").increment(1);
                tracing::info!(path = %tailed.path.display(), "rotated file read to its end");
            }
        }
        if let Err(error) = self.save()
            && let Some(held_back) = FILE_PROBLEMS.allow()
        {
            tracing::warn!(path = %self.checkpoint_path.display(), %error, held_back, "file offsets not saved");
        }
        count
    }

    /// After a panicked poll: the offsets as last saved, as at a restart.
    fn reload_saved(&mut self) {
        if let Ok(bytes) = std::fs::read(&self.checkpoint_path)
            && let Ok(saved) = serde_json::from_slice::<SavedOffsets>(&bytes)
        {
            self.saved = saved
                .files
                .into_iter()
                .map(|offset| ((offset.device, offset.inode), offset))
                .collect();
        }
    }

    /// Expands the patterns and opens files not seen before.
    fn discover(&mut self) {
        let mut present: Vec<(PathBuf, FileKey, u64)> = Vec::new();
        for pattern in &self.patterns {
            for path in expand(pattern) {
                // Follows a symbolic link: the file it names is what is read.
                if let Ok(metadata) = std::fs::metadata(&path)
                    && metadata.is_file()
                {
                    present.push((path, (metadata.dev(), metadata.ino()), metadata.len()));
                }
            }
        }
        let previously_current: Vec<FileKey> = self
            .files
            .iter()
            .filter(|(_, tailed)| tailed.current)
            .map(|(key, _)| *key)
            .collect();
        for tailed in self.files.values_mut() {
            tailed.current = false;
        }
        for (path, key, size) in present {
            if let Some(tailed) = self.files.get_mut(&key) {
                tailed.current = true;
                tailed.rotated_at = None;
                tailed.path = path;
                continue;
            }
            let saved = self.saved.remove(&key).filter(|saved| {
                std::fs::File::open(&path).is_ok_and(|file| same_file(saved, &file))
            });
            let offset = match saved {
                // The same file as before the restart (a smaller one was truncated meanwhile).
                Some(saved) if saved.offset <= size => saved.offset,
                Some(_) => 0,
                None if self.first_start && self.start_at == FileStart::End => size,
                None => 0,
            };
            self.open(path, key, offset, true);
        }
        // Files of the last run no longer under their name: rotated while isms was down. The
        // rotated file is usually in the same directory; finish it from its saved offset.
        let missing: Vec<SavedOffset> = self.saved.drain().map(|(_, saved)| saved).collect();
        for saved in missing {
            if let Some(path) = find_by_inode(&saved)
                && std::fs::File::open(&path).is_ok_and(|file| same_file(&saved, &file))
            {
                self.open(path, (saved.device, saved.inode), saved.offset, false);
            }
        }
        // Files just seen gone from their name: the grace period starts now, however long they
        // were quiet before (their writer may not have reopened its log yet).
        for key in previously_current {
            if let Some(tailed) = self.files.get_mut(&key)
                && !tailed.current
            {
                tailed.rotated_at = Some(Instant::now());
            }
        }
        self.first_start = false;
    }

    fn open(&mut self, path: PathBuf, key: FileKey, offset: u64, current: bool) {
        match std::fs::File::open(&path) {
            Ok(file) => {
                tracing::info!(path = %path.display(), offset, "tailing file");
                self.files.insert(
                    key,
                    TailedFile {
                        path,
                        file,
                        offset,
                        resume_offset: offset,
                        skipping_long_line: false,
                        converter: (self.converters)(),
                        last_growth: Instant::now(),
                        current,
                        rotated_at: (!current).then(Instant::now),
                        fingerprint: None,
                    },
                );
            }
            Err(error) => {
                if let Some(held_back) = FILE_PROBLEMS.allow() {
                    tracing::warn!(path = %path.display(), %error, held_back, "cannot open file to tail");
                }
            }
        }
    }

    /// Writes the offsets durably: temporary file, fsync, rename.
    fn save(&mut self) -> std::io::Result<()> {
        let mut files: Vec<SavedOffset> = self
            .files
            .iter_mut()
            .map(|(&(device, inode), tailed)| SavedOffset {
                path: tailed.path.clone(),
                device,
                inode,
                offset: tailed.resume_offset,
                fingerprint: tailed.fingerprint(),
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let text =
            serde_json::to_vec_pretty(&SavedOffsets { files }).map_err(std::io::Error::other)?;
        if text == self.last_saved {
            return Ok(());
        }
        let temporary = self.checkpoint_path.with_extension("json.tmp");
        {
            use std::io::Write as _;
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&text)?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, &self.checkpoint_path)?;
        if let Some(directory) = self.checkpoint_path.parent() {
            std::fs::File::open(directory)?.sync_all()?;
        }
        self.last_saved = text;
        Ok(())
    }
}

/// The files a pattern names now: itself, or the directory's entries whose names match its
/// wildcards, sorted.
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let Some(name) = pattern.file_name().map(|name| name.to_string_lossy()) else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return vec![pattern.to_path_buf()];
    }
    let Some(directory) = pattern.parent() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| wildcard_matches(name.as_bytes(), entry.file_name().as_encoded_bytes()))
        .map(|entry| entry.path())
        .collect();
    paths.sort();
    paths
}

/// `*` matches any run of bytes, `?` one byte; everything else itself.
fn wildcard_matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((star_p, star_n)) = star {
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|byte| *byte == b'*')
}

/// The file with the saved inode in the saved path's directory, if it is still there.
fn find_by_inode(saved: &SavedOffset) -> Option<PathBuf> {
    let directory = saved.path.parent()?;
    std::fs::read_dir(directory)
        .ok()?
        .filter_map(Result::ok)
        .find(|entry| {
            entry.metadata().is_ok_and(|metadata| {
                metadata.dev() == saved.device && metadata.ino() == saved.inode
            })
        })
        .map(|entry| entry.path())
}

struct ReadOutcome {
    /// Where the next read starts.
    new_offset: u64,
    /// Inside a line too long, to be skipped to its newline.
    skipping: bool,
    /// The last offset after a line at which the converter held nothing back.
    resume_offset: u64,
    /// Bytes read this time.
    bytes_read: u64,
    /// The file's size when read.
    size: u64,
    /// Everything up to the size was read (but perhaps a last line without its newline).
    at_end: bool,
    /// The bytes after the last newline, when the read reached the end of the file.
    unterminated: Option<String>,
}

/// Reads the whole lines written after the file's offset (up to `budget` bytes), converting each
/// into `events`. Returns where the next read starts; the file's own offsets are not moved (that
/// waits for the store).
fn read_new_lines(
    tailed: &mut TailedFile,
    max_line_bytes: usize,
    received: Timestamp,
    budget: u64,
    events: &mut Vec<LineEvent>,
) -> ReadOutcome {
    let mut outcome = ReadOutcome {
        new_offset: tailed.offset,
        skipping: tailed.skipping_long_line,
        resume_offset: tailed.resume_offset,
        bytes_read: 0,
        size: tailed.offset,
        at_end: true,
        unterminated: None,
    };
    let size = match tailed.file.metadata() {
        Ok(metadata) => metadata.len(),
        Err(_) => return outcome,
    };
    outcome.size = size;
    let mut offset = tailed.offset;
    if size < offset {
        // copytruncate: the file was emptied under us; what is in it now is new.
        metrics::counter!("isms_files_truncations_total").increment(1);
        tracing::info!(path = %tailed.path.display(), previous_offset = offset, size, "file truncated; reading it from the start");
        offset = 0;
        outcome.skipping = false;
        outcome.resume_offset = 0;
        // Its first bytes are new too.
        tailed.fingerprint = None;
    }
    outcome.new_offset = offset;
    let end = size.min(offset + budget);
    outcome.at_end = end == size;
    if end <= offset {
        return outcome;
    }
    let mut buffer = vec![0u8; (end - offset) as usize];
    let mut filled = 0;
    while filled < buffer.len() {
        match tailed
            .file
            .read_at(&mut buffer[filled..], offset + filled as u64)
        {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                if let Some(held_back) = FILE_PROBLEMS.allow() {
                    tracing::warn!(path = %tailed.path.display(), %error, held_back, "cannot read tailed file");
                }
                break;
            }
        }
    }
    buffer.truncate(filled);
    outcome.bytes_read = filled as u64;
    outcome.at_end = outcome.at_end && offset + filled as u64 == size;
    let mut start = 0;
    while start < buffer.len() {
        let Some(newline) = memchr_newline(&buffer[start..]) else {
            // A line without its newline yet: wait for it, unless it is already too long.
            let pending = buffer.len() - start;
            if outcome.skipping || pending > max_line_bytes {
                if !outcome.skipping {
                    too_long(tailed);
                }
                outcome.skipping = true;
                start = buffer.len();
            } else if outcome.at_end {
                outcome.unterminated = Some(String::from_utf8_lossy(&buffer[start..]).into_owned());
            }
            break;
        };
        let line = &buffer[start..start + newline];
        start += newline + 1;
        if outcome.skipping {
            // The end of a line already counted as too long.
            outcome.skipping = false;
        } else if line.len() > max_line_bytes {
            too_long(tailed);
        } else {
            let line = String::from_utf8_lossy(line);
            let line = line.trim_end_matches('\r');
            if !line.trim().is_empty() {
                metrics::counter!("isms_files_lines_total").increment(1);
                events.extend(tailed.converter.push_line(line, received));
            }
        }
        if !tailed.converter.holds_lines() {
            outcome.resume_offset = offset + start as u64;
        }
    }
    outcome.new_offset = offset + start as u64;
    outcome
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|byte| *byte == b'\n')
}

fn too_long(tailed: &TailedFile) {
    metrics::counter!("isms_files_dropped_total", "reason" => "too_long").increment(1);
    if let Some(held_back) = FILE_PROBLEMS.allow() {
        tracing::warn!(path = %tailed.path.display(), held_back, "line longer than files.max_line_bytes dropped");
    }
}

/// Normalizes the events of a tailed file with the file as their origin (`origin.endpoint` is
/// `file:` and its path).
pub fn normalize_file_events(
    raw: Vec<LineEvent>,
    path: &Path,
    received: Timestamp,
) -> Vec<isms_event::Event> {
    let origin = Origin {
        peer: None,
        endpoint: format!("file:{}", path.display()),
        key_name: None,
    };
    let delivery = Delivery::new(&origin, received);
    raw.into_iter()
        .filter_map(|event| match event.into_event(&delivery) {
            Ok(event) => Some(event),
            Err(error) => {
                metrics::counter!("isms_files_dropped_total", "reason" => "invalid").increment(1);
                if let Some(held_back) = FILE_PROBLEMS.allow() {
                    tracing::warn!(%error, held_back, "file line not stored");
                }
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_place_fits_only_a_file_that_starts_the_same() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("auth.log");
        std::fs::write(&path, "Nov 30 10:00:00 host sshd[1]: first line\n").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let saved = SavedOffset {
            path: path.clone(),
            device: 0,
            inode: 0,
            offset: 20,
            fingerprint: fingerprint(&file, 20),
        };
        assert!(same_file(&saved, &file));
        // Another file in the same inode (or the same name), written anew.
        std::fs::write(&path, "Dec  1 00:00:00 host cron[2]: other content\n").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        assert!(!same_file(&saved, &file));
        // Shorter than what was hashed: not the same file either.
        std::fs::write(&path, "short").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        assert!(!same_file(&saved, &file));
        let unprinted = SavedOffset {
            fingerprint: None,
            ..saved
        };
        assert!(
            same_file(&unprinted, &file),
            "offsets saved before fingerprints are trusted"
        );
    }

    #[test]
    fn wildcards_match_like_a_shell_in_one_file_name() {
        for (pattern, name, expected) in [
            ("auth.log", "auth.log", true),
            ("auth.log*", "auth.log.1", true),
            ("auth.log*", "auth.log", true),
            ("eve*.json", "eve-2026.json", true),
            ("eve*.json", "eve-2026.json.gz", false),
            ("*.log", "syslog", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*a*b*", "xxaxxbxx", true),
        ] {
            assert_eq!(
                wildcard_matches(pattern.as_bytes(), name.as_bytes()),
                expected,
                "{pattern} vs {name}"
            );
        }
    }
}
