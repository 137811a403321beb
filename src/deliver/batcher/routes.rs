//! Which owners go by batch: the state the batcher shares with the
//! dispatcher (whose claims leave those owners' batchable jobs alone) and
//! with `status` (the modes in use). No I/O: the batcher decides, this
//! remembers.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{DeliveryMode, PerIndicator};
use crate::queue::BatchOwners;

/// How long an owner whose batch API failed goes per indicator before
/// batch is tried again.
pub(super) const FALLBACK_FOR: Duration = Duration::from_secs(600);
/// How long a decision of which owners go by batch holds.
const DECISION_HOLDS: Duration = Duration::from_millis(250);

/// The mode one owner's indicators go by now (`status`, the metrics' info).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeInUse {
    /// The owner; `None` for every owner not listed.
    pub owner: Option<String>,
    pub mode: RouteMode,
}

impl ModeInUse {
    /// As the heartbeat records it for `status`: the owner, or `*` for
    /// every other owner, and the mode's name.
    pub fn heartbeat_entry(&self) -> (String, String) {
        let owner = self.owner.clone().unwrap_or_else(|| "*".into());
        (owner, self.mode.to_string())
    }
}

/// How an owner's indicators go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMode {
    Batch,
    PerIndicator(PerIndicator),
    /// Per indicator because the owner's batch API failed (for
    /// [`FALLBACK_FOR`]).
    FallenBack(PerIndicator),
}

impl std::fmt::Display for RouteMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteMode::Batch => f.write_str("batch"),
            RouteMode::PerIndicator(p) => write!(f, "{p}"),
            RouteMode::FallenBack(p) => write!(f, "{p} (batch API not usable)"),
        }
    }
}

/// Which owners go by batch, and which fell back from it.
#[derive(Debug, Default)]
pub struct Routes {
    /// Owners whose due jobs go by batch now (`auto`: the batcher's choice).
    chosen: Mutex<BTreeSet<String>>,
    /// Owners whose batch API failed, and until when they go per indicator.
    fallback: Mutex<HashMap<String, Instant>>,
    /// When `chosen` was last decided.
    decided_at: Mutex<Option<Instant>>,
}

impl Routes {
    /// The owners whose batchable jobs the dispatcher leaves to the
    /// batcher: in `batch` mode every owner's but those whose batch API
    /// failed; in `auto` those the batcher chose.
    pub fn batching_owners(&self, mode: DeliveryMode) -> BatchOwners {
        match mode {
            DeliveryMode::V2 | DeliveryMode::V3 => BatchOwners::None,
            DeliveryMode::Batch => {
                let now = Instant::now();
                let fallback = self.fallback.lock().expect("routes");
                BatchOwners::AllBut(
                    fallback
                        .iter()
                        .filter(|(_, until)| **until > now)
                        .map(|(o, _)| o.clone())
                        .collect(),
                )
            }
            DeliveryMode::Auto => BatchOwners::Only(
                self.chosen
                    .lock()
                    .expect("routes")
                    .iter()
                    .cloned()
                    .collect(),
            ),
        }
    }

    /// Whether the last decision still holds (within [`DECISION_HOLDS`]).
    pub(super) fn decided_lately(&self) -> bool {
        self.decided_at
            .lock()
            .expect("routes")
            .is_some_and(|at| at.elapsed() < DECISION_HOLDS)
    }

    /// Records a decision: these owners go by batch.
    pub(super) fn decide(&self, owners: &[String]) {
        *self.chosen.lock().expect("routes") = owners.iter().cloned().collect();
        *self.decided_at.lock().expect("routes") = Some(Instant::now());
    }

    /// Forgets fallbacks that have run out.
    pub(super) fn expire_fallbacks(&self) {
        let now = Instant::now();
        self.fallback
            .lock()
            .expect("routes")
            .retain(|_, until| *until > now);
    }

    /// Whether `owner` goes per indicator because its batch API failed.
    pub(super) fn falling_back(&self, owner: &str) -> bool {
        self.fallback
            .lock()
            .expect("routes")
            .get(owner)
            .is_some_and(|until| *until > Instant::now())
    }

    /// The owner goes per indicator for [`FALLBACK_FOR`]; true the first
    /// time (so that it is said once per fallback).
    pub(super) fn fall_back(&self, owner: &str) -> bool {
        let first = self
            .fallback
            .lock()
            .expect("routes")
            .insert(owner.to_string(), Instant::now() + FALLBACK_FOR)
            .is_none();
        self.chosen.lock().expect("routes").remove(owner);
        first
    }

    /// The modes in use now: per owner where it is not the default, then
    /// the default (owner `None`).
    pub fn modes_in_use(&self, per_indicator: PerIndicator) -> Vec<ModeInUse> {
        let now = Instant::now();
        let mut out: Vec<ModeInUse> = self
            .chosen
            .lock()
            .expect("routes")
            .iter()
            .map(|o| ModeInUse {
                owner: Some(o.clone()),
                mode: RouteMode::Batch,
            })
            .collect();
        for (o, until) in self.fallback.lock().expect("routes").iter() {
            if *until > now {
                out.push(ModeInUse {
                    owner: Some(o.clone()),
                    mode: RouteMode::FallenBack(per_indicator),
                });
            }
        }
        out.push(ModeInUse {
            owner: None,
            mode: RouteMode::PerIndicator(per_indicator),
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fallen_back_owner_leaves_the_batch_owners_and_shows_its_mode() {
        let r = Routes::default();
        r.decide(&["A".into(), "B".into()]);
        assert_eq!(
            r.batching_owners(DeliveryMode::Auto),
            BatchOwners::Only(vec!["A".into(), "B".into()])
        );
        assert!(r.fall_back("B"));
        assert!(!r.fall_back("B"), "said once per fallback");
        assert!(r.falling_back("B") && !r.falling_back("A"));
        assert_eq!(
            r.batching_owners(DeliveryMode::Auto),
            BatchOwners::Only(vec!["A".into()])
        );
        assert_eq!(
            r.batching_owners(DeliveryMode::Batch),
            BatchOwners::AllBut(vec!["B".into()])
        );
        assert_eq!(r.batching_owners(DeliveryMode::V2), BatchOwners::None);
        let shown: Vec<String> = r
            .modes_in_use(PerIndicator::V3)
            .iter()
            .map(|m| format!("{}={}", m.owner.as_deref().unwrap_or("*"), m.mode))
            .collect();
        assert_eq!(shown, ["A=batch", "B=v3 (batch API not usable)", "*=v3"]);
    }
}
