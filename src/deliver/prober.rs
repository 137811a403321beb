//! The prober: ends pauses when the API lets requests through again, and
//! releases held owners when the API lists them again.
//!
//! A credentials or clock pause is probed (`GET /v2/owners`) first after
//! `delivery.probe_min`, then at a doubling interval up to `probe_max`, or
//! at once on SIGHUP. An open circuit is probed when its open period ends,
//! then every [`CIRCUIT_PROBE_EVERY`]: a passing probe half-opens it.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::policy::{Action, policy};
use super::{Api, Delivery, Throttle};
use crate::names::ErrorClass;

/// How often an open circuit is probed after its open period.
pub const CIRCUIT_PROBE_EVERY: Duration = Duration::from_secs(2);

/// How long `run --once` waits on an open circuit at the least (three failed
/// probes), however short `delivery.backoff_max_secs` is.
pub const ONCE_CIRCUIT_PATIENCE: Duration = CIRCUIT_PROBE_EVERY.saturating_mul(3);

impl Delivery {
    pub(super) async fn prober(self, cancel: CancellationToken) {
        let mut interval = self.config().delivery.probe_min;
        let mut pause_probe_at: Option<Instant> = None;
        let mut next_owner_probe = Instant::now() + interval;
        loop {
            let mut forced = false;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.probe_now.notified() => forced = true,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            let cfg = self.config();
            let now = Instant::now();
            let api = self.api.borrow().clone();
            match self.gate.paused() {
                Some(p) if p.class == ErrorClass::CircuitOpen => {
                    if p.until.is_some_and(|u| now < u) && !forced {
                        continue;
                    }
                    match probe(&api, &self.throttle).await {
                        Ok(()) => {
                            self.breaker.lock().expect("breaker").half_open();
                            self.gate.resume();
                            tracing::info!("probe passed: circuit half-open, delivery resumes");
                            self.work_added.notify_one();
                        }
                        Err(why) => {
                            tracing::debug!(last = %why, "circuit still open");
                            self.gate
                                .probe_circuit_at(Instant::now() + CIRCUIT_PROBE_EVERY);
                        }
                    }
                }
                Some(p) => {
                    let due = *pause_probe_at.get_or_insert(now + interval);
                    if !forced && now < due {
                        continue;
                    }
                    match probe(&api, &self.throttle).await {
                        Ok(()) => {
                            // The dispatcher, waking, clears the pause from
                            // the queue and the metrics.
                            self.gate.resume();
                            tracing::info!(was = %p.class, "probe passed: delivery resumes");
                            self.work_added.notify_one();
                        }
                        Err(why) => {
                            interval = (interval * 2).min(cfg.delivery.probe_max);
                            pause_probe_at = Some(Instant::now() + interval);
                            tracing::warn!(
                                last = %why,
                                next_probe_secs = interval.as_secs(),
                                "still paused: {}",
                                p.reason
                            );
                        }
                    }
                }
                None => {
                    pause_probe_at = None;
                    interval = cfg.delivery.probe_min;
                    if now >= next_owner_probe || forced {
                        next_owner_probe = now + cfg.delivery.probe_min;
                        self.release_visible_owners(&api).await;
                    }
                }
            }
        }
    }

    /// Releases the held owners that `GET /v2/owners` lists again.
    async fn release_visible_owners(&self, api: &Api) {
        let Ok(held) = self.queue.held_owners().await else {
            return;
        };
        if held.is_empty() {
            return;
        }
        self.throttle.wait().await;
        let Ok(visible) = api.client.owners().await else {
            return;
        };
        for h in held
            .iter()
            .filter(|h| visible.iter().any(|o| o.name == h.owner))
        {
            self.held.lock().expect("held").remove(&h.owner);
            match self.queue.release_owner(&h.owner).await {
                Ok(n) => {
                    tracing::info!(owner = %h.owner, jobs = n, "owner accessible again: released");
                    self.work_added.notify_one();
                }
                Err(e) => {
                    tracing::error!(owner = %h.owner, error = %e, "cannot release the owner")
                }
            }
        }
    }
}

/// One probe, `GET /v2/owners`, read through the policy: it passes when
/// the policy would go on; a clock the server corrects is corrected and the
/// probe sent once more. The error is what the server said.
async fn probe(api: &Api, throttle: &Throttle) -> Result<(), String> {
    let mut clock_corrected = false;
    loop {
        throttle.wait().await;
        let outcome = match api.client.owners().await {
            Ok(_) => return Ok(()),
            Err(o) => o,
        };
        match policy(&outcome, clock_corrected) {
            Action::NextStep => return Ok(()),
            Action::CorrectClockAndRetry { server_date } => {
                api.client.clock().correct_to(server_date);
                clock_corrected = true;
            }
            _ => return Err(outcome.message()),
        }
    }
}
