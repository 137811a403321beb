//! The one place that decides what an answer means ([`policy`]), and the
//! backoff between attempts of one call. The worker, the breaker and the
//! prober act on the [`Action`] it returns, never on the `Outcome` itself.

use std::time::{Duration, SystemTime};

use crate::api::Outcome;
use crate::names::ErrorClass;

/// What the daemon does about one answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The call is done (created, or already there): go on to the next.
    NextStep,
    /// Our clock is off: correct it to the server's and retry the call at
    /// once, counting no attempt.
    CorrectClockAndRetry { server_date: SystemTime },
    /// Credentials or clock are wrong for every job: stop all delivery,
    /// count no attempt, probe until it passes.
    PauseAll { class: ErrorClass, reason: String },
    /// This owner is not accessible: park its jobs, deliver other owners.
    HoldOwner,
    /// The API refused this job's data: bury it with the message.
    Bury,
    /// What the call names is not there (404): bury the job, except that a
    /// File's call after its create is first tried under its next hash
    /// (ThreatConnect may hold the File under another of its hashes), and a
    /// batch job ThreatConnect no longer knows is given up as lost.
    NotFound,
    /// Slow down: wait as told (or a default) and lower the rate for a while.
    RateLimited { retry_after: Option<Duration> },
    /// A transient failure: retry the call with backoff, bury it after
    /// `delivery.max_attempts` consecutive failures. `outcome_unknown`: the
    /// request may have been applied all the same (no answer came, or a
    /// gateway gave up waiting), so an attribute is checked before it is
    /// sent again.
    Backoff { outcome_unknown: bool },
    /// The batch API is off: this owner's jobs go per indicator for a while.
    FallBackFromBatch,
    /// A batch upload was too large: split it into uploads of at most
    /// `limit` bytes (0: the server did not say; halve it).
    SplitBatch { limit: u64 },
    /// The instance has no such security label: the indicator goes without
    /// it (the call is sent again at once without the label, counting no
    /// attempt; the label is left out from then on).
    DropLabel { label: String },
}

impl Action {
    /// A transient failure: what the circuit breaker counts.
    pub fn is_transient_failure(&self) -> bool {
        matches!(self, Action::Backoff { .. })
    }
}

/// The one place that decides what an answer means. `clock_just_corrected`
/// is true when this call was already retried after a clock correction.
pub fn policy(outcome: &Outcome, clock_just_corrected: bool) -> Action {
    match outcome {
        Outcome::Success | Outcome::Duplicate { .. } => Action::NextStep,
        Outcome::SignatureMismatch => Action::PauseAll {
            class: ErrorClass::Signature,
            reason: format!(
                "signature mismatch: {}",
                outcome.advice().unwrap_or("check the credentials")
            ),
        },
        Outcome::TimestampOutOfRange { server_date: Some(t) } if !clock_just_corrected => {
            Action::CorrectClockAndRetry { server_date: *t }
        }
        Outcome::TimestampOutOfRange { .. } => Action::PauseAll {
            class: ErrorClass::Timestamp,
            reason: "timestamp out of range even after correcting the offset: check the system clock (NTP)".into(),
        },
        Outcome::Unauthorized => Action::PauseAll {
            class: ErrorClass::Unauthorized,
            reason: format!(
                "unauthorized: {}",
                outcome.advice().unwrap_or("issue a new token")
            ),
        },
        Outcome::AccessDenied { .. } | Outcome::OwnerNotFound => Action::HoldOwner,
        Outcome::Validation { .. } | Outcome::Unexpected { .. } => Action::Bury,
        Outcome::NotFound => Action::NotFound,
        Outcome::RateLimited { retry_after } => Action::RateLimited {
            retry_after: *retry_after,
        },
        // A gateway that timed out (504) or lost the upstream (502) may have
        // passed the request on; a server that answered anything else did
        // not apply it.
        Outcome::ServerError { status, .. } => Action::Backoff {
            outcome_unknown: matches!(status, 502 | 504),
        },
        // No answer: the request may or may not have been applied.
        Outcome::Transport { .. } => Action::Backoff {
            outcome_unknown: true,
        },
        Outcome::BatchUnavailable { .. } => Action::FallBackFromBatch,
        Outcome::UploadTooLarge { limit } => Action::SplitBatch { limit: *limit },
        Outcome::UnknownSecurityLabel { label } => Action::DropLabel {
            label: label.clone(),
        },
    }
}

/// Exponential backoff with full jitter: a random delay up to
/// `min(max, base * 2^(attempt-1))`.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let cap = exp.min(max);
    cap.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One table of every outcome and its action: long because the policy is.
    #[allow(clippy::too_many_lines)]
    #[test]
    fn policy_covers_every_class() {
        let now = SystemTime::now();
        let cases: Vec<(Outcome, Action)> = vec![
            (Outcome::Success, Action::NextStep),
            (
                Outcome::Duplicate {
                    message: "already exists".into(),
                },
                Action::NextStep,
            ),
            (
                Outcome::TimestampOutOfRange {
                    server_date: Some(now),
                },
                Action::CorrectClockAndRetry { server_date: now },
            ),
            (
                Outcome::AccessDenied {
                    message: "Access Denied".into(),
                },
                Action::HoldOwner,
            ),
            (Outcome::OwnerNotFound, Action::HoldOwner),
            (
                Outcome::Validation {
                    message: "Please enter a valid Host".into(),
                },
                Action::Bury,
            ),
            (Outcome::NotFound, Action::NotFound),
            (
                Outcome::Unexpected {
                    status: 302,
                    body: String::new(),
                },
                Action::Bury,
            ),
            (
                Outcome::RateLimited {
                    retry_after: Some(Duration::from_secs(3)),
                },
                Action::RateLimited {
                    retry_after: Some(Duration::from_secs(3)),
                },
            ),
            (
                Outcome::ServerError {
                    status: 503,
                    message: String::new(),
                },
                Action::Backoff {
                    outcome_unknown: false,
                },
            ),
            (
                Outcome::ServerError {
                    status: 504,
                    message: String::new(),
                },
                Action::Backoff {
                    outcome_unknown: true,
                },
            ),
            (
                Outcome::Transport {
                    message: "reset".into(),
                },
                Action::Backoff {
                    outcome_unknown: true,
                },
            ),
            (
                Outcome::BatchUnavailable {
                    message: "Batch job api is not available".into(),
                },
                Action::FallBackFromBatch,
            ),
            (
                Outcome::UploadTooLarge { limit: 1000 },
                Action::SplitBatch { limit: 1000 },
            ),
        ];
        for (o, a) in cases {
            assert_eq!(policy(&o, false), a, "{o:?}");
        }
        assert!(matches!(
            policy(&Outcome::SignatureMismatch, false),
            Action::PauseAll {
                class: ErrorClass::Signature,
                ..
            }
        ));
        match policy(&Outcome::Unauthorized, false) {
            Action::PauseAll {
                class: ErrorClass::Unauthorized,
                reason,
            } => assert!(reason.contains("issue a new token"), "{reason}"),
            a => panic!("{a:?}"),
        }
        let again = policy(
            &Outcome::TimestampOutOfRange {
                server_date: Some(now),
            },
            true,
        );
        match again {
            Action::PauseAll {
                class: ErrorClass::Timestamp,
                reason,
            } => assert!(reason.contains("NTP")),
            a => panic!("{a:?}"),
        }
    }

    #[test]
    fn backoff_is_jittered_under_an_exponential_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempt in 1..12 {
            let cap = (base * (1 << (attempt - 1))).min(max);
            for _ in 0..50 {
                assert!(backoff(attempt, base, max) <= cap);
            }
        }
        let spread: std::collections::HashSet<u128> =
            (0..50).map(|_| backoff(5, base, max).as_micros()).collect();
        assert!(spread.len() > 10, "no jitter: {spread:?}");
    }
}
