//! What a failed batch call means for its batch job, through the one
//! policy: try the step again after a wait, or give the batch job up and
//! say how its jobs go back ([`Returned`]).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Batcher;
use super::routes::FALLBACK_FOR;
use crate::api::Outcome;
use crate::deliver::policy::{Action, backoff};
use crate::names::ErrorClass;
use crate::queue::{BatchJob, BatchState, Uncertainty};

/// How a batch call ended when it did not succeed.
pub(super) enum Failed {
    /// Try the step again after this wait.
    Retry(Duration),
    /// Give the batch job up; its jobs go back to pending.
    Abandon(Abandon),
}

/// A batch job given up: why, how its jobs go back, and the class recorded
/// on them (which counts an attempt) when the failure is theirs to count.
pub(super) struct Abandon {
    pub(super) error: String,
    pub(super) returned: Returned,
    pub(super) class: Option<ErrorClass>,
}

/// How a given-up batch job's jobs go back to pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Returned {
    /// As they were: nothing of theirs reached ThreatConnect, so they may
    /// go by batch again.
    Unsent,
    /// ThreatConnect may have processed them all the same: they go per
    /// indicator, every attribute looked for before it is sent, never by
    /// batch again.
    MaybeProcessed,
}

impl Returned {
    /// Once data may be at ThreatConnect, its jobs must not go by batch again.
    fn after(sent: bool) -> Self {
        if sent {
            Returned::MaybeProcessed
        } else {
            Returned::Unsent
        }
    }

    /// What the queue records of it (`call_uncertain`).
    pub(super) fn uncertainty(self) -> Uncertainty {
        match self {
            Returned::Unsent => Uncertainty::None,
            Returned::MaybeProcessed => Uncertainty::Batch,
        }
    }
}

impl Failed {
    pub(super) fn abandon(error: String, returned: Returned, class: Option<ErrorClass>) -> Self {
        Failed::Abandon(Abandon {
            error,
            returned,
            class,
        })
    }
}

impl Batcher {
    /// What a failed batch call means for the batch job: `action` is the
    /// policy's reading of `outcome`; `attempts`, tries of this step so far.
    pub(super) async fn failed(
        &self,
        b: &BatchJob,
        outcome: &Outcome,
        action: Action,
        attempts: u32,
    ) -> Failed {
        let sent = matches!(b.state, BatchState::Uploading | BatchState::Uploaded);
        match action {
            Action::NextStep => Failed::Retry(Duration::ZERO),
            Action::CorrectClockAndRetry { server_date } => {
                self.clock_corrected.store(true, Ordering::Relaxed);
                let offset = self.d.api.borrow().client.clock().correct_to(server_date);
                tracing::warn!(
                    offset_secs = offset,
                    "server says our clock is off: correcting the signing timestamp"
                );
                Failed::Retry(Duration::ZERO)
            }
            Action::PauseAll { class, reason } => {
                self.d.pause(class, reason).await;
                Failed::Retry(Duration::ZERO)
            }
            // The batch API needs rights that per-indicator calls do not
            // (tc-api.md section 5): the owner goes per indicator, where a
            // real lack of access to it holds it.
            Action::HoldOwner => {
                self.fall_back(&b.owner, outcome);
                let error = format!("batch call refused: {}", outcome.message());
                Failed::abandon(error, Returned::after(sent), None)
            }
            Action::FallBackFromBatch => {
                self.fall_back(&b.owner, outcome);
                Failed::abandon(outcome.message(), Returned::after(sent), None)
            }
            Action::RateLimited { retry_after } => {
                self.d.throttle.slow_down();
                Failed::Retry(retry_after.unwrap_or(Duration::from_secs(5)))
            }
            Action::Backoff { .. } => self.transient(b, outcome, sent, attempts),
            Action::SplitBatch { limit } => self.split(b, limit),
            // A batch call refused for a label (items carry them, not
            // calls) is refused like any data.
            Action::Bury | Action::NotFound | Action::DropLabel { .. } => {
                self.refused(b, outcome, &action, sent)
            }
        }
    }

    /// A transient failure: retried with backoff; a create (nothing sent)
    /// failing `delivery.max_attempts` times sends the owner per indicator.
    fn transient(&self, b: &BatchJob, outcome: &Outcome, sent: bool, attempts: u32) -> Failed {
        let cfg = self.d.config();
        let d = &cfg.delivery;
        if !sent && attempts >= d.max_attempts {
            self.fall_back(&b.owner, outcome);
            let error = format!("batch call failed {attempts} times: {}", outcome.message());
            return Failed::abandon(error, Returned::Unsent, Some(outcome.class()));
        }
        tracing::debug!(batch = b.id, attempts, error = %outcome.message(), "batch call failed: retrying");
        Failed::Retry(backoff(attempts.max(1), d.backoff_base, d.backoff_max))
    }

    /// An upload over the instance's limit: its jobs go in smaller batch
    /// jobs (`limit` 0: not told, half of this one); one item alone over
    /// it goes per indicator.
    fn split(&self, b: &BatchJob, limit: u64) -> Failed {
        if b.items <= 1 {
            let error = format!(
                "an indicator of {} bytes is over the instance's upload limit: it goes per indicator",
                b.data_bytes
            );
            // Marked as of unknown outcome so that it is not batched again.
            return Failed::abandon(error, Returned::MaybeProcessed, None);
        }
        let limit = match limit {
            0 => (b.data_bytes as usize / 2).max(1024),
            n => n as usize,
        };
        self.learned_max_bytes.store(limit, Ordering::Relaxed);
        tracing::warn!(
            batch = b.id,
            bytes = b.data_bytes,
            limit,
            "the instance takes smaller batch uploads: splitting"
        );
        let error = format!(
            "upload of {} bytes refused (limit {limit}): its jobs go in smaller batch jobs",
            b.data_bytes
        );
        Failed::abandon(error, Returned::Unsent, None)
    }

    /// Refused (`Bury`) or not there (`NotFound`). Before any data went (a
    /// config it refuses, no batch endpoint at all) the owner goes per
    /// indicator; after, the job is lost or refused and its jobs may have
    /// been processed.
    fn refused(&self, b: &BatchJob, outcome: &Outcome, action: &Action, sent: bool) -> Failed {
        if !sent {
            self.fall_back(&b.owner, outcome);
            let error = format!("batch job refused: {}", outcome.message());
            return Failed::abandon(error, Returned::Unsent, None);
        }
        let error = if *action == Action::NotFound {
            format!(
                "ThreatConnect does not know batch job {} (404): lost",
                b.tc_batch_id.unwrap_or(0)
            )
        } else {
            format!("batch call refused: {}", outcome.message())
        };
        Failed::abandon(
            error,
            Returned::MaybeProcessed,
            Some(ErrorClass::BatchFailed),
        )
    }

    /// An answer that did not read as the API documents: retried later.
    pub(super) fn unreadable(&self, b: &BatchJob, error: &str) -> Failed {
        tracing::warn!(batch = b.id, tc_batch_id = b.tc_batch_id, %error, "unreadable batch answer: retrying");
        Failed::Retry(self.d.config().batch.poll_max)
    }

    /// The owner's batch API is not usable: it goes per indicator for a
    /// while (said once per fallback).
    fn fall_back(&self, owner: &str, outcome: &Outcome) {
        if self.d.routes.fall_back(owner) {
            tracing::warn!(owner, message = %outcome.message(), retry_in_secs = FALLBACK_FOR.as_secs(), advice = outcome.advice().unwrap_or(""), "batch API not usable for this owner (see message): delivering per indicator");
        }
    }
}
