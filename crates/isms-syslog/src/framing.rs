//! Cutting a TCP byte stream into syslog messages (RFC 6587), whatever framing the sender chose.
//!
//! Senders differ and do not announce which they use, so each frame is recognized by its first byte:
//!
//! - a digit: octet counting, `LEN SP MSG` (logger `--octet-count`, rsyslog, syslog-ng's `syslog()`
//!   driver, which counts a trailing LF that is then dropped from the message);
//! - anything else: non-transparent framing, the message ends at LF (logger `-T`, rsyslog, syslog-ng's
//!   `network()` driver) or at NUL (Python's `SysLogHandler` over TCP); a CR before the LF goes too.
//!
//! A frame longer than the maximum message size is reported as [`FrameError::TooLong`] and skipped
//! (an octet-counted frame by its count, a terminated one up to its terminator), so one oversized
//! message never costs the ones after it. A count that is not a number ends the stream: the framing is
//! lost and nothing after it can be trusted.

/// Why a frame was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame is longer than the maximum message size; it was skipped.
    #[error("a syslog message of {length} bytes exceeds the maximum of {limit} (skipped)")]
    TooLong {
        /// Its length (for a terminated frame: how much was seen before giving up on it).
        length: usize,
        /// The maximum message size.
        limit: usize,
    },
    /// An octet count that is not a number: the rest of the stream cannot be framed.
    #[error("bad octet count {found:?}: the stream's framing is lost")]
    BadCount {
        /// The bytes where the count should have been (at most 12).
        found: String,
    },
}

/// Longest octet count read (the digits of a count that could never fit are an error).
const MAX_COUNT_DIGITS: usize = 10;

/// Buffers a stream and hands out its frames.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    /// Bytes at the front of `buffer` already handed out.
    consumed: usize,
    max_message_bytes: usize,
    /// Skipping the rest of an oversized frame: bytes still to drop (counted) or until a terminator.
    skipping: Skip,
    /// The framing was lost: no more frames.
    broken: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Nothing,
    Bytes(usize),
    ToTerminator,
}

impl FrameDecoder {
    /// A decoder that refuses messages longer than `max_message_bytes`.
    pub fn new(max_message_bytes: usize) -> FrameDecoder {
        FrameDecoder {
            buffer: Vec::new(),
            consumed: 0,
            max_message_bytes,
            skipping: Skip::Nothing,
            broken: false,
        }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.consumed > 0 && self.consumed >= self.buffer.len() / 2 {
            self.buffer.drain(..self.consumed);
            self.consumed = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame, if the buffer holds one.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        loop {
            if self.broken {
                return None;
            }
            let pending = &self.buffer[self.consumed..];
            match self.skipping {
                Skip::Bytes(remaining) => {
                    let dropped = remaining.min(pending.len());
                    self.consumed += dropped;
                    if dropped < remaining {
                        self.skipping = Skip::Bytes(remaining - dropped);
                        return None;
                    }
                    self.skipping = Skip::Nothing;
                    continue;
                }
                Skip::ToTerminator => match pending.iter().position(|b| matches!(b, b'\n' | 0)) {
                    Some(end) => {
                        self.consumed += end + 1;
                        self.skipping = Skip::Nothing;
                        continue;
                    }
                    None => {
                        self.consumed += pending.len();
                        return None;
                    }
                },
                Skip::Nothing => {}
            }
            // Blank space between frames (a stray LF after a counted frame) is no message.
            let leading = pending
                .iter()
                .take_while(|b| matches!(b, b'\n' | b'\r' | b'\0' | b' '))
                .count();
            if leading > 0 {
                self.consumed += leading;
                continue;
            }
            let pending = &self.buffer[self.consumed..];
            let first = *pending.first()?;
            return if first.is_ascii_digit() {
                self.counted_frame()
            } else {
                self.terminated_frame()
            };
        }
    }

    /// What is left when the stream ends: a last terminated message without its terminator (logger
    /// `--octet-count` ends without one, rsyslog may close mid-line). An incomplete counted frame is
    /// dropped: its sender did not finish it.
    pub fn finish(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        if let Some(frame) = self.next_frame() {
            return Some(frame);
        }
        if self.broken || self.skipping != Skip::Nothing {
            return None;
        }
        let pending = &self.buffer[self.consumed..];
        if pending.is_empty() || pending[0].is_ascii_digit() {
            self.consumed = self.buffer.len();
            return None;
        }
        let frame = pending.to_vec();
        self.consumed = self.buffer.len();
        Some(Ok(frame))
    }

    fn counted_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        let pending = &self.buffer[self.consumed..];
        let digits = pending.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > MAX_COUNT_DIGITS || (digits < pending.len() && pending[digits] != b' ') {
            self.broken = true;
            let found = String::from_utf8_lossy(&pending[..pending.len().min(12)]).into_owned();
            return Some(Err(FrameError::BadCount { found }));
        }
        if digits == pending.len() {
            return None; // the count is still arriving
        }
        let length: usize = std::str::from_utf8(&pending[..digits])
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(usize::MAX);
        let start = digits + 1;
        if length > self.max_message_bytes {
            self.consumed += start;
            self.skipping = Skip::Bytes(length);
            return Some(Err(FrameError::TooLong {
                length,
                limit: self.max_message_bytes,
            }));
        }
        if pending.len() < start + length {
            return None;
        }
        let frame = pending[start..start + length].to_vec();
        self.consumed += start + length;
        Some(Ok(frame))
    }

    fn terminated_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        let pending = &self.buffer[self.consumed..];
        let limit = self.max_message_bytes;
        match pending.iter().position(|b| matches!(b, b'\n' | 0)) {
            Some(end) if end <= limit => {
                let frame = pending[..end].to_vec();
                self.consumed += end + 1;
                Some(Ok(frame))
            }
            Some(end) => {
                self.consumed += end + 1;
                Some(Err(FrameError::TooLong { length: end, limit }))
            }
            None if pending.len() > limit => {
                let length = pending.len();
                self.consumed += length;
                self.skipping = Skip::ToTerminator;
                Some(Err(FrameError::TooLong { length, limit }))
            }
            None => None,
        }
    }
}
