//! Waiting: for a condition, polled with a deadline ([`wait_until`]); for
//! the queue's clock to move on ([`clock_past`]); and, where wall time
//! itself is what a test measures or plays, [`hold_for`], the only place
//! a test sleeps.

use std::fmt::Display;
use std::time::{Duration, Instant};

use tc_ingest::queue::now_ms;

/// How often [`wait_until`] looks.
const POLL: Duration = Duration::from_millis(25);

/// Polls `check` every 25 ms until it holds; panics naming `what` when it
/// still does not after `timeout`.
pub async fn wait_until(timeout: Duration, what: impl Display, check: impl AsyncFnMut() -> bool) {
    if !wait_until_or(timeout, check).await {
        panic!("not within {timeout:?}: {what}");
    }
}

/// Polls `check` every 25 ms until it holds (true) or `timeout` passes (false).
pub async fn wait_until_or(timeout: Duration, check: impl AsyncFnMut() -> bool) -> bool {
    poll_every(POLL, timeout, check).await
}

/// Polls `check` every `every` until it holds (true) or `timeout` passes
/// (false): for a poll whose pace is part of the test (an operator's
/// `sqlite3` looking every 300 ms).
pub async fn poll_every(
    every: Duration,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until the queue's millisecond clock ([`now_ms`]) is past `ms`:
/// what the queue stamped up to `ms` (a delivery, a finished file, a lease
/// taken for less than the time since) is then strictly older than
/// anything it stamps from now on.
pub async fn clock_past(ms: i64) {
    wait_until(
        Duration::from_secs(5),
        format_args!("the queue's clock past {ms}"),
        async || now_ms() > ms,
    )
    .await;
}

/// Lets `duration` of wall time pass, on purpose: the one place a test
/// sleeps. Whatever a test waits *for* is a condition, polled with a
/// deadline ([`wait_until`]); this is for the few tests where time itself
/// is the thing measured or played, and no event marks the moment:
///
/// - a window that a measurement spans (an idle daemon's CPU use);
/// - a producer's pace (lines written or appended slowly, so that the
///   watcher must wait for the file to settle);
/// - a kill at an arbitrary moment (the crash tests' claim is "at any
///   moment": the moment must not be chosen by an event).
///
/// `what` says which; it is printed (shown with a failing test's output).
/// Keep the duration as short as the assertion allows.
pub async fn hold_for(duration: Duration, what: impl Display) {
    eprintln!("holding {duration:?}: {what}");
    tokio::time::sleep(duration).await;
}
