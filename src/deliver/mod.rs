//! Delivery: a rate-limited pool of workers that send each job's calls
//! (v2: create, then each tag, then each attribute; v3: one create) and,
//! for owners with a large backlog, batch jobs; every answer is acted on
//! through one policy ([`policy::policy`]).
//!
//! By role: `worker` (the dispatcher claims due jobs under fenced leases;
//! workers send calls), `batcher` (batch jobs, their durable steps), `writer` (group commits, lease renewal), `policy`
//! (what an answer means; backoff), `gate` (paused or running), `breaker`
//! (the circuit breaker), `throttle` (the rate limiter), `prober` (ends
//! pauses, releases held owners).
//!
//! Guarantees (ARCHITECTURE.md, "Delivery"): a job is worked on by one
//! worker at a time (a result applies only under its lease token, and
//! leases are renewed while jobs are worked on); a call's success is
//! committed before the job's next call is sent; an attribute call whose
//! outcome is unknown is checked before it is sent again.

mod batcher;
mod breaker;
mod gate;
mod labels;
mod members;
pub mod policy;
mod prober;
mod retire;
mod throttle;
mod worker;
mod writer;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use batcher::{ModeInUse, RouteMode, Routes};
pub use gate::{Gate, Paused};
pub use labels::Labels;
pub use policy::{Action, backoff, policy};
pub use prober::ONCE_CIRCUIT_PATIENCE;
pub use throttle::Throttle;

use crate::api::{Client, Endpoints};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::queue::{Job, Member, Queue};
use batcher::Batcher;
use breaker::Breaker;
use writer::{Leases, Results};

/// The client and request builders, swapped whole on reload.
#[derive(Debug, Clone)]
pub struct Api {
    pub client: Client,
    pub endpoints: Endpoints,
}

/// Everything delivery needs; cheap to clone into tasks.
#[derive(Clone)]
pub struct Delivery {
    pub queue: Queue,
    pub api: watch::Receiver<Arc<Api>>,
    pub cfg: watch::Receiver<Arc<Config>>,
    pub gate: Arc<Gate>,
    pub throttle: Arc<Throttle>,
    pub metrics: Arc<Metrics>,
    /// Wakes the prober at once (SIGHUP).
    pub probe_now: Arc<Notify>,
    /// Wakes the dispatcher (new jobs queued by intake).
    pub work_added: Arc<Notify>,
    breaker: Arc<Mutex<Breaker>>,
    /// Owners held in this run: their jobs already handed to workers are
    /// parked without another request.
    held: Arc<Mutex<HashSet<String>>>,
    /// Whether a pause is shown in the queue and the metrics.
    pause_shown: Arc<tokio::sync::Mutex<bool>>,
    /// Which owners go by batch: the batcher decides, the dispatcher's
    /// claims and `status` read it.
    pub routes: Arc<Routes>,
    /// The instance's security labels, and those it lacks.
    pub labels: Arc<Labels>,
    /// The job leases this daemon holds.
    leases: Leases,
    /// This daemon on the queue (its heartbeat, the roles it holds).
    pub member: Arc<Member>,
}

impl Delivery {
    pub fn new(
        queue: Queue,
        api: watch::Receiver<Arc<Api>>,
        cfg: watch::Receiver<Arc<Config>>,
        metrics: Arc<Metrics>,
        member: Member,
    ) -> Self {
        let d = cfg.borrow().delivery.clone();
        Self {
            queue,
            api,
            cfg,
            gate: Arc::new(Gate::default()),
            throttle: Arc::new(Throttle::new(d.rate_per_second, d.burst, metrics.clone())),
            metrics,
            probe_now: Arc::new(Notify::new()),
            work_added: Arc::new(Notify::new()),
            breaker: Arc::default(),
            held: Arc::default(),
            pause_shown: Arc::default(),
            routes: Arc::default(),
            labels: Arc::default(),
            leases: Leases::default(),
            member: Arc::new(member),
        }
    }

    /// How many job leases this daemon holds now.
    pub fn leases_held(&self) -> usize {
        self.leases.len()
    }

    fn config(&self) -> Arc<Config> {
        self.cfg.borrow().clone()
    }

    /// The mode each owner's indicators go by now.
    pub fn modes_in_use(&self) -> Vec<ModeInUse> {
        self.routes.modes_in_use(self.config().per_indicator())
    }

    /// Runs every delivery task until `cancel` or until one fails, then
    /// shuts down in order: stop claiming, let in-flight calls finish
    /// within the grace time, write every result, return unfinished leases.
    ///
    /// # Errors
    /// The first task failure (the writer's database error, say): the
    /// daemon then stops with exit code 3.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        // `stop` ends the dispatcher and the workers' next calls: on
        // shutdown, or at once when the writer fails.
        let stop = cancel.child_token();
        let workers = self.config().delivery.workers;
        let (job_tx, job_rx) = mpsc::channel::<Job>(workers * 4);
        let job_rx = Arc::new(tokio::sync::Mutex::new(job_rx));
        let (results, res_rx) = Results::channel(workers * 4);
        let leases = self.leases.clone();
        let hard = CancellationToken::new();
        let tracker = TaskTracker::new();
        for _ in 0..workers {
            let (d, rx, res) = (self.clone(), job_rx.clone(), results.clone());
            let (soft, hard) = (stop.clone(), hard.clone());
            tracker.spawn(async move { d.worker(rx, res, soft, hard).await });
        }
        drop(results);
        let writer = tokio::spawn({
            let (d, leases, stop) = (self.clone(), leases.clone(), stop.clone());
            async move {
                let r = d.writer(res_rx, leases).await;
                if r.is_err() {
                    stop.cancel();
                }
                r
            }
        });
        let side = CancellationToken::new();
        let prober = tokio::spawn(self.clone().prober(side.clone()));
        let recovery = tokio::spawn(throttle::recovery(self.throttle.clone(), side.clone()));
        let membership = tokio::spawn(self.clone().membership(side.clone()));

        // Owners that go by batch are known before the first claim.
        let batcher = Batcher::new(&self);
        batcher.choose(&self.config()).await?;
        let batch_task = tokio::spawn({
            let (b, stop) = (batcher.clone(), stop.clone());
            async move {
                let r = b.run(&stop).await;
                if r.is_err() {
                    stop.cancel();
                }
                r
            }
        });
        let dispatched = self.dispatcher(job_tx, &leases, &batcher, &stop).await;
        stop.cancel();
        let batched = batch_task
            .await
            .map_err(|e| anyhow::anyhow!("the batcher failed: {e}"))
            .and_then(|r| r.map_err(|e| e.context("the batcher failed")));

        // The dispatcher has stopped and closed the job channel. Workers
        // finish their current call; after the grace time they are told to
        // stop at once.
        tracker.close();
        let grace = self.config().delivery.shutdown_grace;
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "in-flight requests did not finish within the shutdown grace"
            );
            hard.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
        }
        side.cancel();
        let _ = prober.await;
        let _ = recovery.await;
        let _ = membership.await;
        let written = writer
            .await
            .map_err(|e| anyhow::anyhow!("the result writer failed: {e}"))
            .and_then(|r| r.map_err(|e| e.context("the result writer failed")));
        // The root cause first: a writer failure explains the rest.
        written.and(batched).and(dispatched)?;
        // On a shared queue, only this daemon's own leases: the others'
        // are theirs.
        let released = self.queue.release_own_leases().await?;
        if released > 0 {
            tracing::info!(jobs = released, "returned unfinished leases to pending");
        }
        Ok(())
    }
}
