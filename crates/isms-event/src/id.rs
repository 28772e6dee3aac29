//! Event ids: UUID version 7 (RFC 9562), time-ordered to the millisecond.
//!
//! The random bits come from a generator per thread, seeded once from the operating system, rather
//! than from a system call per id: at tens of thousands of events per second the call costs more than
//! the rest of normalization. Ids only need to be unique, not secret.
use std::cell::RefCell;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

thread_local! {
    static ID_RANDOM: RefCell<StdRng> = RefCell::new(StdRng::from_os_rng());
}

/// A new UUID v7 for an event received at `received_micros`, as lowercase hyphenated text.
pub fn new_event_id(received_micros: i64) -> String {
    let mut random_bytes = [0u8; 10];
    ID_RANDOM.with(|random| random.borrow_mut().fill_bytes(&mut random_bytes));
    let millis = u64::try_from(received_micros.div_euclid(1000)).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &random_bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_carry_the_time_and_differ() {
        let first = new_event_id(1_700_000_000_123_456);
        let second = new_event_id(1_700_000_000_123_456);
        assert_ne!(first, second);
        let parsed = uuid::Uuid::parse_str(&first).expect("uuid");
        assert_eq!(parsed.get_version_num(), 7);
        let (seconds, nanos) = parsed.get_timestamp().expect("v7 has a time").to_unix();
        assert_eq!((seconds, nanos / 1_000_000), (1_700_000_000, 123));
    }
}
