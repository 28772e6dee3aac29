//! A log file's lines decoded on several threads, given back in file order.
//!
//! Reading a file was the replay's bound: one thread parsed every JSON line, normalized its event
//! and judged whether any rule could match it, while the engine's thread waited. A line that is
//! one JSON object needs none of the line decoder's state (`isms_decode::LineDecoder::json_lines`),
//! so those lines are decoded, judged by the prefilter and built on worker threads, one block of
//! lines at a time. Every other line (syslog text, audit records) is handed back as text, to go
//! through the file's own decoder in order. Blocks are put back in file order before anything is
//! given out, so the replay sees the file exactly as one thread would have read it.
use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

use isms_decode::JsonLines;
use isms_detect::{Engine, EventPrefilter, PrefilterScratch};
use isms_event::{Delivery, Event};
use serde_json::Value;

use super::{ReadCounts, read_bounded_line};

/// Most lines in one block.
const BLOCK_LINES: usize = 512;

/// Most bytes of text in one block (lines are read whole, so a block may end a line past it).
const BLOCK_BYTES: usize = 256 * 1024;

/// Blocks read and not yet given out, per worker: the bound on what a file's lines hold in memory
/// however far the workers run ahead of the replay.
const BLOCKS_IN_FLIGHT_PER_WORKER: usize = 4;

/// What became of one line.
pub(super) enum LineOutcome {
    /// A JSON object line, decoded and built.
    Event(Event),
    /// A JSON object line whose event a worker's own engine ran (rules without state). The event
    /// and its detections are dropped where they were made.
    Detected(PrintedDetections),
    /// A line for the file's decoder, in order: text, or anything that is not one JSON object.
    Text { number: usize, text: String },
    /// A line that cannot be read (too long) or whose event normalization refuses.
    Unreadable { number: usize, reason: String },
}

/// What a worker's engine made of one event: its time, how many detections fired and cleared,
/// and the detections printed.
pub(super) struct PrintedDetections {
    pub time: i64,
    pub fired: u64,
    pub cleared: u64,
    pub printed: Vec<u8>,
}

/// Lines read in order, for any worker.
struct LineBlock {
    index: u64,
    first_line: usize,
    /// The lines one after another.
    text: String,
    /// Per line, where it ends in `text`, or why it cannot be read.
    lines: Vec<Result<usize, String>>,
    /// The input ended after these lines.
    end: bool,
    /// Reading failed after these lines.
    error: Option<String>,
}

/// A block's lines as a worker left them (ruled-out lines are left out).
struct DecodedBlock {
    index: u64,
    outcomes: Vec<LineOutcome>,
    end: bool,
    error: Option<String>,
}

/// What every worker of a file needs.
pub(super) struct WorkerSetup {
    pub json_lines: JsonLines,
    pub delivery: Delivery,
    pub prefilter: Option<Arc<EventPrefilter>>,
    /// With rules that keep no state, the engine each worker copies to run its events itself.
    pub engine: Option<Arc<Engine>>,
    /// How the workers print their engines' detections (`--json`).
    pub print_json: bool,
    pub counts: Arc<ReadCounts>,
}

/// A file's lines, decoded by worker threads, in file order.
pub(super) struct ParallelLines {
    results: Receiver<DecodedBlock>,
    /// Events detection is done with, for the workers to drop.
    spent: Sender<Vec<Event>>,
    /// One credit per block given out: the reader reads a block only with a credit in hand.
    credits: SyncSender<()>,
    /// Blocks decoded before the one due.
    waiting: BTreeMap<u64, DecodedBlock>,
    next_block: u64,
    current: std::vec::IntoIter<LineOutcome>,
    /// What ends the file once `current` is given out: the end, or an error reading it.
    after_current: Option<Result<(), String>>,
    ended: bool,
}

impl ParallelLines {
    /// Starts a thread reading `input` and `workers` threads decoding its lines.
    pub(super) fn start(
        input: Box<dyn std::io::BufRead + Send>,
        setup: WorkerSetup,
        workers: usize,
    ) -> anyhow::Result<ParallelLines> {
        let workers = workers.max(1);
        let in_flight = workers * BLOCKS_IN_FLIGHT_PER_WORKER;
        let (blocks_sender, blocks) = std::sync::mpsc::sync_channel(in_flight);
        let (credits, credits_receiver) = std::sync::mpsc::sync_channel(in_flight);
        for _ in 0..in_flight {
            credits
                .send(())
                .expect("the channel has room for every credit");
        }
        let (results_sender, results) = std::sync::mpsc::channel();
        let (spent, spent_receiver) = std::sync::mpsc::channel();
        let spent_receiver = Arc::new(Mutex::new(spent_receiver));
        std::thread::Builder::new()
            .name("replay-lines".into())
            .spawn(move || read_blocks(input, &blocks_sender, &credits_receiver))?;
        let blocks = Arc::new(Mutex::new(blocks));
        let setup = Arc::new(setup);
        for _ in 0..workers {
            let blocks = blocks.clone();
            let results_sender = results_sender.clone();
            let setup = setup.clone();
            let spent = spent_receiver.clone();
            std::thread::Builder::new()
                .name("replay-decode".into())
                .spawn(move || decode_blocks(&blocks, &results_sender, &spent, &setup))?;
        }
        Ok(ParallelLines {
            results,
            spent,
            credits,
            waiting: BTreeMap::new(),
            next_block: 0,
            current: Vec::new().into_iter(),
            after_current: None,
            ended: false,
        })
    }

    /// Hands events detection is done with to the workers, to be dropped on the threads that
    /// built them (mostly: any worker takes them).
    pub(super) fn drop_spent(&self, spent: Vec<Event>) {
        // Workers that have ended drop nothing more: the events are dropped here instead.
        let _ = self.spent.send(spent);
    }

    /// The next line's outcome in file order (ruled-out lines skipped); `None` at the end. An error
    /// reading the file comes after every line read before it.
    pub(super) fn next(&mut self) -> anyhow::Result<Option<LineOutcome>> {
        loop {
            if let Some(outcome) = self.current.next() {
                return Ok(Some(outcome));
            }
            match self.after_current.take() {
                Some(Ok(())) => self.ended = true,
                Some(Err(error)) => {
                    self.ended = true;
                    anyhow::bail!(error);
                }
                None => {}
            }
            if self.ended {
                return Ok(None);
            }
            let block = loop {
                if let Some(block) = self.waiting.remove(&self.next_block) {
                    break block;
                }
                match self.results.recv() {
                    Ok(block) => {
                        self.waiting.insert(block.index, block);
                    }
                    Err(_) => anyhow::bail!("a thread reading or decoding the file stopped"),
                }
            };
            self.next_block += 1;
            // The block is out of the pipeline: the reader may read another.
            let _ = self.credits.try_send(());
            self.current = block.outcomes.into_iter();
            self.after_current = match block.error {
                Some(error) => Some(Err(error)),
                None if block.end => Some(Ok(())),
                None => None,
            };
        }
    }
}

/// The reading thread: the input's lines in blocks, until the end, an error, or no worker is left.
/// Each block takes a credit, given back when the block is given out in order.
fn read_blocks(
    mut input: Box<dyn std::io::BufRead + Send>,
    blocks: &SyncSender<LineBlock>,
    credits: &Receiver<()>,
) {
    let mut buffer = Vec::new();
    let mut number = 0usize;
    for index in 0u64.. {
        if credits.recv().is_err() {
            return;
        }
        let mut block = LineBlock {
            index,
            first_line: number + 1,
            text: String::with_capacity(BLOCK_BYTES + 4096),
            lines: Vec::with_capacity(BLOCK_LINES),
            end: false,
            error: None,
        };
        while block.lines.len() < BLOCK_LINES && block.text.len() < BLOCK_BYTES {
            match read_bounded_line(&mut input, &mut buffer) {
                Err(error) => {
                    block.error = Some(format!("{error:#}"));
                    break;
                }
                Ok(None) => {
                    block.end = true;
                    break;
                }
                Ok(Some(Ok(line))) => {
                    block.text.push_str(&line);
                    block.lines.push(Ok(block.text.len()));
                }
                Ok(Some(Err(reason))) => block.lines.push(Err(reason)),
            }
            number += 1;
        }
        let last = block.end || block.error.is_some();
        if blocks.send(block).is_err() || last {
            return;
        }
    }
}

/// A worker: blocks decoded until the reader has sent its last one or the file is no longer read.
fn decode_blocks(
    blocks: &Mutex<Receiver<LineBlock>>,
    results: &Sender<DecodedBlock>,
    spent: &Mutex<Receiver<Vec<Event>>>,
    setup: &WorkerSetup,
) {
    let mut prefiltering = Prefiltering::new(setup.prefilter.clone());
    let mut engine = setup.engine.as_ref().map(|engine| WorkerEngine {
        engine: engine
            .stateless_copy()
            .expect("the replay shares an engine only when its rules keep no state"),
        chain_stops_counted: 0,
    });
    loop {
        if let Ok(spent) = spent.try_lock() {
            while let Ok(events) = spent.try_recv() {
                drop(events);
            }
        }
        let received = match blocks.lock() {
            Ok(blocks) => blocks.recv(),
            Err(_) => return,
        };
        let Ok(block) = received else {
            return;
        };
        let mut outcomes = Vec::with_capacity(block.lines.len());
        let mut start = 0;
        for (offset, line) in block.lines.into_iter().enumerate() {
            let number = block.first_line + offset;
            match line {
                Err(reason) => outcomes.push(LineOutcome::Unreadable { number, reason }),
                Ok(end) => {
                    let text = &block.text[start..end];
                    start = end;
                    if let Some(outcome) =
                        decode_line(text, number, setup, &mut prefiltering, engine.as_mut())
                    {
                        outcomes.push(outcome);
                    }
                }
            }
        }
        if let Some(engine) = &mut engine {
            engine.count_chain_stops(&setup.counts);
        }
        let decoded = DecodedBlock {
            index: block.index,
            outcomes,
            end: block.end,
            error: block.error,
        };
        if results.send(decoded).is_err() {
            return;
        }
    }
}

/// A worker's copy of the replay's engine (rules without state).
struct WorkerEngine {
    engine: Engine,
    /// Detections this copy did not feed back (chain depth limit) that the counts already hold.
    chain_stops_counted: u64,
}

impl WorkerEngine {
    /// Adds the detections not fed back since the last call to the replay's counts.
    fn count_chain_stops(&mut self, counts: &ReadCounts) {
        let stops = self.engine.statistics().chain_stops;
        counts.chain_stops.fetch_add(
            stops - self.chain_stops_counted,
            std::sync::atomic::Ordering::Relaxed,
        );
        self.chain_stops_counted = stops;
    }
}

/// One line: a JSON object line judged (`None` when no rule can match it) and built, and run by
/// the worker's engine when it has one (`None` when nothing fired); any other line handed back
/// as text.
fn decode_line(
    text: &str,
    number: usize,
    setup: &WorkerSetup,
    prefiltering: &mut Prefiltering,
    engine: Option<&mut WorkerEngine>,
) -> Option<LineOutcome> {
    let as_text = || LineOutcome::Text {
        number,
        text: text.to_owned(),
    };
    let Some(object_text) = isms_decode::json_object_text(text) else {
        return Some(as_text());
    };
    let judged = prefiltering.judge_line(object_text, &setup.counts);
    if judged == Some(false) {
        return None;
    }
    let Some(raw) = setup.json_lines.decode(object_text) else {
        return Some(as_text());
    };
    if judged.is_none() && !prefiltering.judge_raw(&raw, &setup.counts) {
        return None;
    }
    let event = match isms_event::normalize_delivered(raw, &setup.delivery) {
        Ok(event) => event,
        Err(error) => {
            return Some(LineOutcome::Unreadable {
                number,
                reason: error.to_string(),
            });
        }
    };
    let Some(engine) = engine else {
        return Some(LineOutcome::Event(event));
    };
    let detections = engine.engine.process(&event);
    if detections.is_empty() {
        // Done with: no rule took it, and none keeps anything of it.
        setup
            .counts
            .ruled_out
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return None;
    }
    let mut printed = Vec::with_capacity(512 * detections.len());
    let (fired, cleared) = super::fired_and_cleared(&detections);
    for detection in &detections {
        if let Err(error) = super::write_detection(detection, setup.print_json, &mut printed) {
            return Some(LineOutcome::Unreadable {
                number,
                reason: format!("its detections cannot be printed: {error:#}"),
            });
        }
    }
    Some(LineOutcome::Detected(PrintedDetections {
        time: event.utctimestamp_micros,
        fired,
        cleared,
        printed,
    }))
}

/// Ruling out, as they are read, the incoming events no rule can match (see
/// `isms_detect::EventPrefilter`), for as long as it pays.
pub(super) struct Prefiltering {
    prefilter: Option<Arc<EventPrefilter>>,
    scratch: PrefilterScratch,
    /// Events the prefilter looked at, and those it let through: where nearly every event may
    /// match, it stops asking (the test is then only extra work).
    checked: u64,
    passed: u64,
}

/// Events the prefilter is tried on before the replay judges whether it pays.
const PREFILTER_TRIAL: u64 = 8192;

impl Prefiltering {
    pub(super) fn new(prefilter: Option<Arc<EventPrefilter>>) -> Prefiltering {
        Prefiltering {
            prefilter,
            scratch: PrefilterScratch::default(),
            checked: 0,
            passed: 0,
        }
    }

    /// Counts a judgement; after the trial, stops judging when most events pass.
    fn judged(&mut self, may_match: bool, counts: &ReadCounts) {
        self.checked += 1;
        self.passed += u64::from(may_match);
        if self.checked == PREFILTER_TRIAL && self.passed * 4 > self.checked * 3 {
            self.prefilter = None;
        }
        if !may_match {
            counts
                .ruled_out
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Judges a JSON object line (`isms_decode::json_object_text`) from its text, before it is
    /// decoded: `Some(false)` to skip it, `Some(true)` when it may match, `None` when it was not
    /// judged. Only a line the decoder keeps as the object it is, and one normalization cannot
    /// refuse, is judged (a bad one is reported).
    pub(super) fn judge_line(&mut self, object_text: &str, counts: &ReadCounts) -> Option<bool> {
        let prefilter = self.prefilter.as_ref()?;
        let may_match = prefilter.judge_json_line(object_text, &mut self.scratch, &|key| {
            !isms_decode::LineDecoder::json_key_may_be_decoded(key)
        })?;
        self.judged(may_match, counts);
        Some(may_match)
    }

    /// Judges a decoded raw event before it is built; true when it may match (or was not judged).
    pub(super) fn judge_raw(&mut self, raw: &Value, counts: &ReadCounts) -> bool {
        let Some(prefilter) = &self.prefilter else {
            return true;
        };
        // Only events normalization cannot refuse: one it would refuse is reported.
        if !raw
            .as_object()
            .is_some_and(isms_event::normalizes_to_details_only)
        {
            return true;
        }
        let may_match = prefilter.may_match_with(raw, &mut self.scratch);
        self.judged(may_match, counts);
        may_match
    }
}
