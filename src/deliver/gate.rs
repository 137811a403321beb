//! Whether delivery runs, and why not. A pause shows in `status` (through
//! the queue) and in the metrics until delivery runs again.

use std::time::Instant;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Delivery;
use crate::names::ErrorClass;
use crate::queue::{Pause, now_ms};

/// Shared by all delivery tasks.
#[derive(Debug)]
pub struct Gate {
    state: watch::Sender<Option<Paused>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Paused {
    pub class: ErrorClass,
    pub reason: String,
    pub since_ms: i64,
    /// A circuit-breaker pause: when the prober next probes. Other pauses
    /// (`None`) are probed at the prober's own doubling interval.
    pub until: Option<Instant>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            state: watch::channel(None).0,
        }
    }
}

impl Gate {
    pub fn paused(&self) -> Option<Paused> {
        self.state.borrow().clone()
    }

    /// Pauses; returns true if it was running. A pause that only a probe
    /// ends (credentials, clock) is not replaced by a circuit pause.
    pub fn pause(&self, class: ErrorClass, reason: String, until: Option<Instant>) -> bool {
        let mut first = false;
        self.state.send_if_modified(|s| {
            if s.as_ref().is_some_and(|p| p.until.is_none()) {
                return false;
            }
            first = s.is_none();
            *s = Some(Paused {
                class,
                reason,
                since_ms: now_ms(),
                until,
            });
            true
        });
        first
    }

    /// Moves a circuit pause's next probe to `at`.
    pub fn probe_circuit_at(&self, at: Instant) {
        self.state.send_if_modified(|s| match s {
            Some(p) if p.until.is_some() => {
                p.until = Some(at);
                true
            }
            _ => false,
        });
    }

    pub fn resume(&self) -> bool {
        self.state.send_if_modified(|s| s.take().is_some())
    }

    /// Waits until delivery runs (or `cancel`).
    pub async fn wait_running(&self, cancel: &CancellationToken) {
        let mut rx = self.state.subscribe();
        loop {
            if rx.borrow_and_update().is_none() {
                return;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = rx.changed() => {}
            }
        }
    }
}

impl Delivery {
    /// Pauses all delivery (credentials or clock).
    pub(super) async fn pause(&self, class: ErrorClass, reason: String) {
        if self.gate.pause(class, reason.clone(), None) {
            tracing::error!(class = %class, reason = %reason, "delivery paused");
            self.record_pause(class, reason).await;
        }
    }

    /// Shows a pause in `status` (through the queue) and in the metrics,
    /// until the dispatcher sees delivery running again.
    pub(super) async fn record_pause(&self, class: ErrorClass, reason: String) {
        let mut shown = self.pause_shown.lock().await;
        *shown = true;
        self.metrics.set_paused(true);
        let pause = Pause {
            class,
            reason,
            since: now_ms(),
        };
        if let Err(e) = self.queue.set_pause(Some(&pause)).await {
            tracing::error!(error = %e, "cannot record the pause in the queue");
        }
    }

    /// Once delivery runs again (a probe passed, or a circuit closed),
    /// `status` and the metrics say so. Recording and clearing hold one
    /// lock and clearing looks at the gate inside it, so a pause that
    /// starts meanwhile is never wiped from `status`.
    pub(super) async fn clear_recorded_pause(&self) -> anyhow::Result<()> {
        let mut shown = self.pause_shown.lock().await;
        if *shown && self.gate.paused().is_none() {
            self.queue.set_pause(None).await?;
            self.metrics.set_paused(false);
            *shown = false;
        }
        Ok(())
    }
}
