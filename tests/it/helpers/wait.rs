//! Waiting for a condition, polled with a deadline ([`wait_until`]).

use std::fmt::Display;
use std::time::{Duration, Instant};

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
pub async fn wait_until_or(timeout: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}
