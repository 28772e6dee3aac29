//! Fuzz target: any TCP byte stream, cut into pieces anywhere, through `isms_syslog::FrameDecoder`.
//!
//! A TCP reader sees a sender's stream in whatever pieces the network delivers, so the frames must not
//! depend on where the pieces were cut, and no frame may exceed the maximum message size (the bound
//! that keeps one connection's memory small). The stream is fed in the pieces the input chooses, frames
//! pulled after each piece as the receiver does, then `finish()` at the end; the frames must equal
//! those of the same stream fed whole (errors compared by kind: how much of an oversized frame had been
//! seen depends on the pieces). The delivered frames, sent again octet-counted, must come back unchanged.
//!
//! Input: byte 0 = maximum message size (0–255, small so oversized frames are common); byte 1 = how many
//! piece lengths follow (low 4 bits; 0 means one byte at a time); then the piece lengths, one byte each,
//! used in turn; the rest is the stream.
#![no_main]

use isms_syslog::{FrameDecoder, FrameError};
use libfuzzer_sys::fuzz_target;

/// A frame, or which kind of error took its place.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Frame(Vec<u8>),
    TooLong,
    BadCount,
}

fuzz_target!(|data: &[u8]| {
    let [max, count, rest @ ..] = data else {
        return;
    };
    let max = usize::from(*max);
    let count = usize::from(count & 0x0f).min(rest.len());
    let (lengths, stream) = rest.split_at(count);

    let whole = decode(max, [stream]);
    let pieces = decode(
        max,
        Pieces {
            stream,
            lengths,
            next: 0,
            was_empty: false,
        },
    );
    assert_eq!(whole, pieces, "the same stream in pieces {lengths:?}");

    let delivered: Vec<&[u8]> = whole
        .iter()
        .filter_map(|seen| match seen {
            Seen::Frame(frame) => Some(frame.as_slice()),
            _ => None,
        })
        .collect();
    for frame in &delivered {
        assert!(
            frame.len() <= max,
            "a frame of {} bytes over {max}",
            frame.len()
        );
    }
    let mut counted = Vec::new();
    for frame in &delivered {
        counted.extend_from_slice(format!("{} ", frame.len()).as_bytes());
        counted.extend_from_slice(frame);
    }
    let again = decode(max, [counted.as_slice()]);
    let expected: Vec<Seen> = delivered
        .iter()
        .map(|frame| Seen::Frame(frame.to_vec()))
        .collect();
    assert_eq!(again, expected, "octet-counted frames come back unchanged");
});

/// Feeds the pieces, pulling frames after each as a receiver does, then finishes the stream.
fn decode<'a>(max: usize, pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<Seen> {
    let mut decoder = FrameDecoder::new(max);
    let mut seen = Vec::new();
    let mut record = |frame: Result<Vec<u8>, FrameError>| {
        seen.push(match frame {
            Ok(frame) => Seen::Frame(frame),
            Err(FrameError::TooLong { .. }) => Seen::TooLong,
            Err(FrameError::BadCount { .. }) => Seen::BadCount,
        })
    };
    for piece in pieces {
        decoder.push(piece);
        while let Some(frame) = decoder.next_frame() {
            record(frame);
        }
    }
    while let Some(frame) = decoder.finish() {
        record(frame);
    }
    assert!(
        decoder.next_frame().is_none() && decoder.finish().is_none(),
        "a finished stream stays finished"
    );
    seen
}

/// The stream cut into the lengths given, in turn (one byte at a time without any).
struct Pieces<'a> {
    stream: &'a [u8],
    lengths: &'a [u8],
    next: usize,
    /// The last piece was empty (an empty push is a case of its own, but the stream must advance).
    was_empty: bool,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.stream.is_empty() {
            return None;
        }
        let length = match self.lengths {
            [] => 1,
            lengths => usize::from(lengths[self.next % lengths.len()]),
        };
        let length = if self.was_empty {
            length.max(1)
        } else {
            length
        };
        self.was_empty = length == 0;
        self.next += 1;
        let (piece, rest) = self.stream.split_at(length.min(self.stream.len()));
        self.stream = rest;
        Some(piece)
    }
}
