//! The result writer: the one task that records delivery results.
//!
//! Group commit: it applies everything waiting in one transaction, then
//! tells each waiting worker whether its result applied (its lease still
//! held). A worker waits for that before it sends the job's next call, so a
//! call's success is durable before anything else is sent. Between batches
//! it renews every lease still held, so a job being worked on is never
//! reclaimed however slow its calls are.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::Delivery;
use crate::names::ErrorClass;
use crate::queue::{JobUpdate, Lease};

/// Results taken into one transaction, at most.
const BATCH: usize = 1024;

/// The leases this daemon holds (claimed and not yet finished): what the
/// writer renews.
#[derive(Debug, Clone, Default)]
pub(super) struct Leases(Arc<Mutex<HashMap<i64, i64>>>);

impl Leases {
    pub(super) fn hold(&self, lease: Lease) {
        self.0.lock().expect("leases").insert(lease.id, lease.token);
    }

    fn drop_lease(&self, lease: Lease) {
        let mut held = self.0.lock().expect("leases");
        if held.get(&lease.id) == Some(&lease.token) {
            held.remove(&lease.id);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.0.lock().expect("leases").len()
    }

    fn all(&self) -> Vec<Lease> {
        self.0
            .lock()
            .expect("leases")
            .iter()
            .map(|(&id, &token)| Lease { id, token })
            .collect()
    }
}

/// One result on its way to the writer, with the worker waiting for it.
pub(super) struct Pending {
    lease: Lease,
    update: JobUpdate,
    applied: oneshot::Sender<bool>,
}

/// How workers hand results to the writer.
#[derive(Clone)]
pub(super) struct Results(mpsc::Sender<Pending>);

impl Results {
    pub(super) fn channel(capacity: usize) -> (Self, mpsc::Receiver<Pending>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self(tx), rx)
    }

    /// Hands a result to the writer and waits until it is committed: true
    /// if it applied, false if the lease had been taken over (the result is
    /// dropped), `None` if the writer is gone.
    pub(super) async fn commit(&self, lease: Lease, update: JobUpdate) -> Option<bool> {
        let (applied, rx) = oneshot::channel();
        self.0
            .send(Pending {
                lease,
                update,
                applied,
            })
            .await
            .ok()?;
        rx.await.ok()
    }
}

impl Delivery {
    /// Runs until every worker has dropped its [`Results`].
    ///
    /// # Errors
    /// Database errors: the daemon stops (exit 3), since nothing can be
    /// recorded.
    pub(super) async fn writer(
        self,
        mut rx: mpsc::Receiver<Pending>,
        leases: Leases,
    ) -> anyhow::Result<()> {
        // A third of the lease as configured now (a reload may shorten it).
        let renew_every = |d: &Self| {
            (d.config().queue.lease / 3).clamp(Duration::from_millis(100), Duration::from_secs(30))
        };
        let mut next_renewal = tokio::time::Instant::now() + renew_every(&self);
        let mut batch: Vec<(Lease, JobUpdate)> = Vec::with_capacity(BATCH);
        let mut waiting: Vec<oneshot::Sender<bool>> = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                p = rx.recv() => {
                    let Some(first) = p else { return Ok(()) };
                    let mut next = Some(first);
                    while let Some(p) = next {
                        batch.push((p.lease, p.update));
                        waiting.push(p.applied);
                        next = if batch.len() < BATCH { rx.try_recv().ok() } else { None };
                    }
                    let lease = self.config().queue.lease;
                    let applied = self.queue.apply(&batch, lease).await?;
                    self.after_commit(&batch, &applied, &leases);
                    for (tx, ok) in waiting.drain(..).zip(applied) {
                        let _ = tx.send(ok);
                    }
                    batch.clear();
                }
                _ = tokio::time::sleep_until(next_renewal) => {
                    next_renewal = tokio::time::Instant::now() + renew_every(&self);
                    let held = leases.all();
                    if !held.is_empty() {
                        self.queue.renew_leases(&held, self.config().queue.lease).await?;
                    }
                }
            }
        }
    }

    /// Forgets finished leases, logs stale results and burials.
    fn after_commit(&self, batch: &[(Lease, JobUpdate)], applied: &[bool], leases: &Leases) {
        let mut stale = 0;
        for ((lease, update), ok) in batch.iter().zip(applied) {
            if !ok || !matches!(update, JobUpdate::Progress { .. }) {
                leases.drop_lease(*lease);
            }
            if !ok {
                stale += 1;
            }
        }
        if stale > 0 {
            tracing::warn!(
                results = stale,
                "results dropped: their jobs' leases had been taken over"
            );
        }
        log_burials(
            batch
                .iter()
                .zip(applied)
                .filter(|(_, ok)| **ok)
                .map(|(u, _)| &u.1),
        );
    }
}

/// One WARN line per burst of burials (a batch of results), by class, with
/// one example each: thousands of rejected rows make a few lines, not
/// thousands. `dead_letters` has every one.
fn log_burials<'a>(updates: impl Iterator<Item = &'a JobUpdate>) {
    let mut by_class: BTreeMap<ErrorClass, (u64, &str)> = BTreeMap::new();
    for u in updates {
        if let JobUpdate::Bury { error } = u {
            by_class
                .entry(error.class)
                .or_insert((0, error.message.as_str()))
                .0 += 1;
        }
    }
    for (class, (jobs, example)) in by_class {
        tracing::warn!(
            class = %class,
            jobs,
            example,
            "jobs buried (see the dead_letters view; `tc-ingest retry` requeues them)"
        );
    }
}
