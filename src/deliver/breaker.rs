//! The circuit breaker: when most recent requests fail transiently, stop
//! sending for a while instead of hammering a sick server.
//!
//! Closed: it counts the last 20 answers; 16 transient failures open it for
//! an open period (the backoff base, doubling with each trip in a row,
//! capped by `delivery.circuit_open_max_secs`). Open: no job request is
//! sent; after the open period the prober probes every couple of seconds.
//! Half-open: a probe passed and delivery resumed; the first transient
//! failure opens the circuit again at once, a success closes it.

use std::collections::VecDeque;
use std::time::Duration;

use super::policy::Action;

const WINDOW: usize = 20;
const THRESHOLD: usize = 16;

#[derive(Debug, Default)]
pub struct Breaker {
    recent: VecDeque<bool>,
    /// Trips in a row (reset by a window of successes).
    trips: u32,
    half_open: bool,
}

impl Breaker {
    /// Records what one answer came to; returns the open period when the
    /// circuit opens.
    pub fn record(
        &mut self,
        action: &Action,
        base: Duration,
        max_open: Duration,
    ) -> Option<Duration> {
        let failed = action.is_transient_failure();
        if std::mem::take(&mut self.half_open) && failed {
            return Some(self.trip(base, max_open));
        }
        self.recent.push_back(failed);
        if self.recent.len() > WINDOW {
            self.recent.pop_front();
        }
        if !failed && self.recent.len() == WINDOW && self.recent.iter().all(|f| !f) {
            self.trips = 0;
        }
        let failures = self.recent.iter().filter(|f| **f).count();
        (self.recent.len() == WINDOW && failures >= THRESHOLD).then(|| self.trip(base, max_open))
    }

    /// A probe passed and delivery resumes: the next answer decides.
    pub fn half_open(&mut self) {
        self.half_open = true;
    }

    fn trip(&mut self, base: Duration, max_open: Duration) -> Duration {
        self.recent.clear();
        self.trips += 1;
        base.saturating_mul(1u32 << (self.trips - 1).min(16))
            .min(max_open)
            .max(Duration::from_millis(100))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: Action = Action::Backoff {
        outcome_unknown: false,
    };
    const OK: Action = Action::NextStep;

    #[test]
    fn trips_only_when_most_requests_fail_and_the_open_period_doubles_to_a_cap() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(30));
        let mut b = Breaker::default();
        // 30% failures never trip it.
        for i in 0..200 {
            assert_eq!(
                b.record(if i % 10 < 3 { &FAIL } else { &OK }, base, cap),
                None
            );
        }
        let mut opens = Vec::new();
        for _ in 0..8 {
            let mut tripped = None;
            for _ in 0..WINDOW {
                tripped = tripped.or(b.record(&FAIL, base, cap));
            }
            opens.push(tripped.expect("trips").as_secs());
        }
        assert_eq!(opens, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn half_open_reopens_on_the_first_failure_and_closes_on_a_success() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(30));
        let mut b = Breaker::default();
        for _ in 0..WINDOW {
            b.record(&FAIL, base, cap);
        }
        b.half_open();
        assert_eq!(
            b.record(&FAIL, base, cap),
            Some(Duration::from_secs(2)),
            "one failure re-opens, for twice as long"
        );
        b.half_open();
        assert_eq!(b.record(&OK, base, cap), None);
        assert_eq!(
            b.record(&FAIL, base, cap),
            None,
            "closed: one failure is not enough"
        );
    }
}
