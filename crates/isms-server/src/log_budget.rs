//! Logging at a bounded rate for problems an outsider can repeat at will.
//!
//! A sender that floods oversized syslog messages, a scanner that opens TLS connections and never
//! finishes the handshake, a producer that publishes garbage: each problem is counted in `/metrics`
//! every time, but logged only a few times per window, or the log itself becomes the denial of
//! service. When a window ends with lines held back, the next logged line says how many.
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Allows at most `per_window` log lines per `window`.
#[derive(Debug)]
pub struct LogBudget {
    per_window: u32,
    window: Duration,
    state: Mutex<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    window_started: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogBudget {
    /// A budget of `per_window` lines every `window`.
    pub const fn new(per_window: u32, window: Duration) -> LogBudget {
        LogBudget {
            per_window,
            window,
            state: Mutex::new(BudgetState {
                window_started: None,
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// Whether a line may be logged now: `Some(n)` with the number of lines held back since the last
    /// one logged (to be mentioned in it), `None` when this one must be held back.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let expired = state
            .window_started
            .is_none_or(|started| now.saturating_duration_since(started) >= self.window);
        if expired {
            state.window_started = Some(now);
            state.logged = 0;
        }
        if state.logged < self.per_window {
            state.logged += 1;
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_logged_a_few_times_per_window_and_the_rest_counted() {
        let budget = LogBudget::new(3, Duration::from_secs(10));
        let start = Instant::now();
        let first_window: Vec<Option<u64>> = (0..10).map(|_| budget.allow_at(start)).collect();
        assert_eq!(
            first_window,
            [
                Some(0),
                Some(0),
                Some(0),
                None,
                None,
                None,
                None,
                None,
                None,
                None
            ]
        );
        let later = start + Duration::from_secs(11);
        assert_eq!(
            budget.allow_at(later),
            Some(7),
            "says how many were held back"
        );
        assert_eq!(budget.allow_at(later), Some(0));
    }
}
