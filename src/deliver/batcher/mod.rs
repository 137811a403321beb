//! Bulk delivery through the batch API (tc-api.md section 5): which owners
//! go by batch ([`routes`]), forming batch jobs (here), driving each through
//! its durable steps ([`steps`]), what a failed batch call means for it
//! ([`failure`]), and mapping a completed job's results to its jobs
//! ([`results`], pure). ARCHITECTURE.md, "Bulk modes".
//!
//! A batch job's steps, each recorded before the next call: `new` (its jobs
//! chosen) → create at ThreatConnect → `created` (its id stored) →
//! `uploading` (recorded before the upload is sent) → `uploaded` (the 202
//! came) → polls → `done` (results applied) or `failed` (jobs returned). After
//! a crash, `uploading` is checked with a status GET before any new upload:
//! `Created` means the data never arrived; anything later is only polled.
//! So no indicator is in two ThreatConnect batch jobs because of a restart.

mod failure;
mod results;
mod routes;
mod steps;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use routes::{ModeInUse, RouteMode, Routes};

use super::{Delivery, Labels};
use crate::api::{Endpoints, batch as wire};
use crate::config::{Config, DeliveryMode};
use crate::queue::{BatchCandidate, BatchJob, Job, Lease, Uncertainty};

/// How often the batcher looks at the backlog when nothing wakes it.
const LOOK: Duration = Duration::from_secs(1);

/// How long an owner's batch role outlives its holder's last look.
const ROLE_TTL: Duration = Duration::from_secs(30);

/// The role of the daemon forming and driving `owner`'s batch jobs.
fn role(owner: &str) -> String {
    format!("batch:{owner}")
}

/// The batch jobs this daemon drives.
#[derive(Default)]
struct Drivers {
    set: JoinSet<(i64, anyhow::Result<()>)>,
    by_batch: HashMap<i64, (String, tokio::task::AbortHandle)>,
}

impl Drivers {
    /// A driver ended: its error, if any, is the batcher's (one stopped
    /// by [`Drivers::stop_owner`] has none).
    fn finished(
        &mut self,
        done: Result<(i64, anyhow::Result<()>), tokio::task::JoinError>,
    ) -> anyhow::Result<()> {
        match done {
            Ok((batch, result)) => {
                self.by_batch.remove(&batch);
                result
            }
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn owners(&self) -> Vec<String> {
        let mut owners: Vec<String> = self.by_batch.values().map(|(o, _)| o.clone()).collect();
        owners.sort();
        owners.dedup();
        owners
    }

    fn stop_owner(&mut self, owner: &str) {
        self.by_batch.retain(|_, (o, handle)| {
            if o == owner {
                handle.abort();
            }
            o != owner
        });
    }
}

/// Batch delivery: the shared delivery handles it calls through (queue,
/// client, rate limiter, breaker, gate, metrics, and the routes it decides)
/// and the state of its own.
#[derive(Clone)]
pub(super) struct Batcher {
    d: Delivery,
    /// The upload limit the instance told us (0: not told).
    learned_max_bytes: Arc<AtomicUsize>,
    /// The last batch call was retried after a clock correction.
    clock_corrected: Arc<AtomicBool>,
}

impl Batcher {
    pub(super) fn new(d: &Delivery) -> Self {
        Self {
            d: d.clone(),
            learned_max_bytes: Arc::default(),
            clock_corrected: Arc::default(),
        }
    }

    /// Forms and drives batch jobs until `stop`: first the open ones (a
    /// previous run's, or on a shared queue a daemon's that died), then new
    /// ones while owners' backlogs call for batch. An owner's batch jobs
    /// are this daemon's only while it holds the owner's role.
    pub(super) async fn run(&self, stop: &CancellationToken) -> anyhow::Result<()> {
        let mut drivers = Drivers::default();
        loop {
            while let Some(done) = drivers.set.try_join_next() {
                drivers.finished(done)?;
            }
            self.d.gate.wait_running(stop).await;
            if stop.is_cancelled() {
                break;
            }
            self.hold_roles(&mut drivers, stop).await?;
            let cfg = self.d.config();
            let owners = self.choose(&cfg).await?;
            let mut formed = false;
            for owner in &owners {
                if drivers.set.len() >= cfg.batch.jobs_in_flight {
                    break;
                }
                if !self.hold_role(owner).await? {
                    continue;
                }
                if let Some(b) = self.form(owner, &cfg).await? {
                    formed = true;
                    self.spawn_driver(&mut drivers, b, stop);
                }
            }
            if formed && drivers.set.len() < cfg.batch.jobs_in_flight {
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                Some(done) = drivers.set.join_next(), if !drivers.set.is_empty() => drivers.finished(done)?,
                _ = self.d.work_added.notified() => {}
                _ = tokio::time::sleep(LOOK) => {}
            }
        }
        // Every step is durable: what is in flight resumes at the next start.
        let grace = self.d.config().delivery.shutdown_grace;
        let _ = tokio::time::timeout(grace, async {
            while drivers.set.join_next().await.is_some() {}
        })
        .await;
        drivers.set.abort_all();
        for owner in drivers.owners() {
            self.d
                .queue
                .release_role(&role(&owner), &self.d.member.id)
                .await?;
        }
        Ok(())
    }

    /// Takes or renews `owner`'s role: whether its batch jobs are this
    /// daemon's to form and drive.
    async fn hold_role(&self, owner: &str) -> anyhow::Result<bool> {
        self.d
            .queue
            .hold_role(&role(owner), &self.d.member.id, ROLE_TTL)
            .await
    }

    /// Renews the roles of the owners this daemon drives batch jobs of
    /// (a driver whose role another daemon took, after a stall, stops),
    /// and takes up the open batch jobs nobody drives.
    async fn hold_roles(
        &self,
        drivers: &mut Drivers,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        for owner in drivers.owners() {
            if !self.hold_role(&owner).await? {
                tracing::warn!(owner, "another daemon took over this owner's batch jobs");
                drivers.stop_owner(&owner);
            }
        }
        for b in self.d.queue.open_batches().await? {
            if drivers.by_batch.contains_key(&b.id) || !self.hold_role(&b.owner).await? {
                continue;
            }
            tracing::info!(batch = b.id, tc_batch_id = b.tc_batch_id, state = ?b.state, "resuming a batch job");
            self.spawn_driver(drivers, b, stop);
        }
        Ok(())
    }

    fn spawn_driver(&self, drivers: &mut Drivers, b: BatchJob, stop: &CancellationToken) {
        let (me, stop, id, owner) = (self.clone(), stop.clone(), b.id, b.owner.clone());
        let handle = drivers
            .set
            .spawn(async move { (id, me.drive(b, &stop).await) });
        drivers.by_batch.insert(id, (owner, handle));
    }

    /// Decides again which owners go by batch in `auto` mode, unless the
    /// last decision still holds: the dispatcher calls this before each
    /// claim, so that a backlog that just grew past `batch.min_indicators`
    /// is not claimed per indicator first.
    pub(super) async fn refresh(&self) -> anyhow::Result<()> {
        let cfg = self.d.config();
        if cfg.delivery.mode == DeliveryMode::Auto && !self.d.routes.decided_lately() {
            self.choose(&cfg).await?;
        }
        Ok(())
    }

    /// Which owners go by batch now (largest backlog first), shared with
    /// the dispatcher.
    pub(super) async fn choose(&self, cfg: &Config) -> anyhow::Result<Vec<String>> {
        let mode = cfg.delivery.mode;
        let mut chosen: Vec<(String, u64)> = Vec::new();
        if matches!(mode, DeliveryMode::Auto | DeliveryMode::Batch) {
            self.d.routes.expire_fallbacks();
            // Enough to rank owners by backlog up to a full batch job.
            let enough = cfg.batch.min_indicators.max(cfg.batch.max_indicators) as u64;
            for (owner, n) in self.d.queue.batch_backlog(enough).await? {
                let wanted = mode == DeliveryMode::Batch || n >= cfg.batch.min_indicators as u64;
                if wanted && !self.d.routes.falling_back(&owner) {
                    chosen.push((owner, n));
                }
            }
        }
        chosen.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let owners: Vec<String> = chosen.into_iter().map(|(o, _)| o).collect();
        self.d.routes.decide(&owners);
        Ok(owners)
    }

    /// Forms one batch job of `owner`'s due jobs: up to `max_indicators`,
    /// a data file under the upload limit, and one item per indicator.
    async fn form(&self, owner: &str, cfg: &Config) -> anyhow::Result<Option<BatchJob>> {
        // A driver may have fallen back since the owners were chosen.
        if self.d.routes.falling_back(owner) {
            return Ok(None);
        }
        let max_bytes = match self.learned_max_bytes.load(Ordering::Relaxed) {
            0 => cfg.batch.max_bytes,
            learned => learned.min(cfg.batch.max_bytes),
        };
        let candidates = self
            .d
            .queue
            .batch_candidates(owner, cfg.batch.max_indicators)
            .await?;
        if candidates
            .iter()
            .any(|c| c.payload.contains("\"security_labels\""))
        {
            self.d.read_labels().await;
        }
        let endpoints = self.d.api.borrow().endpoints.clone();
        let (mut ids, mut sizes, mut seen) = (Vec::new(), Vec::new(), HashSet::new());
        for c in candidates {
            // Two jobs of one indicator wait for separate batch jobs, so that
            // an item's error names one job.
            if !seen.insert((c.kind.clone(), c.value.clone())) {
                continue;
            }
            let item = match item_bytes(&endpoints, &self.d.labels, &c) {
                Ok(item) => item,
                Err(message) => {
                    // Batch mode would leave it waiting: bury it as a
                    // per-indicator worker would.
                    self.d.queue.bury_invalid(c.id, &message).await?;
                    continue;
                }
            };
            let size = wire::data_file_len(sizes.iter().copied().chain([item.len()]));
            // One item alone over the limit still goes, alone: if the
            // instance refuses it, it goes per indicator (`failure`).
            if size > max_bytes && !ids.is_empty() {
                break;
            }
            ids.push(c.id);
            sizes.push(item.len());
        }
        let bytes = wire::data_file_len(sizes.iter().copied());
        let b = self.d.queue.form_batch(owner, &ids, bytes).await?;
        if let Some(b) = &b {
            tracing::info!(
                batch = b.id,
                owner,
                items = b.items,
                bytes,
                "batch job formed"
            );
        }
        Ok(b)
    }
}

/// The data file item of a job; why not when the row does not parse.
/// The instance's missing labels are left out.
fn item_bytes(
    endpoints: &Endpoints,
    labels: &Labels,
    c: &BatchCandidate,
) -> Result<Vec<u8>, String> {
    let job = Job {
        lease: Lease { id: c.id, token: 0 },
        owner: String::new(),
        kind: c.kind.clone(),
        value: c.value.clone(),
        payload: c.payload.clone(),
        steps_done: 0,
        attempts: 0,
        uncertain: Uncertainty::None,
        action: crate::queue::JobAction::Create,
    };
    let (ind, payload) = job.parse()?;
    let sendable = labels.sendable(&payload.security_labels);
    serde_json::to_vec(&endpoints.batch_item(&ind, &payload, &sendable)).map_err(|e| e.to_string())
}
