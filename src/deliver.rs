//! Delivery: a rate-limited pool of workers that send each job's calls
//! (create, then each tag, then each attribute) and act on every answer
//! through one policy ([`policy`]).
//!
//! Tasks: a dispatcher claims due jobs with a lease and hands them to the
//! workers over a bounded channel; workers send requests through the shared
//! rate limiter; a writer applies results to the queue in batches; a prober
//! resumes paused delivery and releases held owners when the API lets them
//! through again.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{Client, Endpoints, Outcome};
use crate::config::{Config, DeliveryConfig};
use crate::metrics::Metrics;
use crate::queue::{ErrorClass, Job, JobError, JobUpdate, Pause, Queue, now_ms};

/// What the daemon does about one answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The step is done (created, or already there): go on to the next.
    NextStep,
    /// Our clock is off: correct it from the server's `Date` and retry the
    /// step at once, counting no attempt.
    CorrectClockAndRetry,
    /// Credentials or clock are wrong for every job: stop all delivery,
    /// count no attempt, probe until it passes.
    PauseAll { class: ErrorClass, reason: String },
    /// This owner is not accessible: park its jobs, deliver other owners.
    HoldOwner,
    /// The API refused this job's data: bury it with the message.
    Bury,
    /// Slow down: wait as told (or a default) and lower the rate for a while.
    RateLimited { retry_after: Option<Duration> },
    /// A transient failure: retry with backoff, bury after the maximum attempts.
    Backoff,
}

/// The one place that decides what an answer means. `clock_just_corrected`
/// is true when this step was already retried after a clock correction.
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
        Outcome::TimestampOutOfRange { server_date: Some(_) } if !clock_just_corrected => Action::CorrectClockAndRetry,
        Outcome::TimestampOutOfRange { .. } => Action::PauseAll {
            class: ErrorClass::Timestamp,
            reason: "timestamp out of range even after correcting the offset: check the system clock (NTP)".into(),
        },
        Outcome::Unauthorized => Action::PauseAll {
            class: ErrorClass::Unauthorized,
            reason: "unauthorized: the API token has expired".into(),
        },
        Outcome::AccessDenied { .. } | Outcome::OwnerNotFound => Action::HoldOwner,
        Outcome::Validation { .. } | Outcome::NotFound | Outcome::Unexpected { .. } => Action::Bury,
        Outcome::RateLimited { retry_after } => Action::RateLimited {
            retry_after: *retry_after,
        },
        Outcome::ServerError { .. } | Outcome::Transport { .. } => Action::Backoff,
    }
}

/// Exponential backoff with full jitter: a random delay up to
/// `min(max, base * 2^(attempt-1))`.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let cap = exp.min(max);
    cap.mul_f64(fastrand::f64())
}

/// The client and request builders, swapped whole on reload.
#[derive(Debug, Clone)]
pub struct Api {
    pub client: Client,
    pub endpoints: Endpoints,
}

// ------------------------------------------------------------------ gate

/// Whether delivery runs, and why not. Shared by all tasks; mirrored into
/// the queue so `status` shows it.
#[derive(Debug)]
pub struct Gate {
    state: watch::Sender<Option<Paused>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Paused {
    pub class: ErrorClass,
    pub reason: String,
    pub since_ms: i64,
    /// A circuit-breaker pause ends by itself at this time; others wait for a probe.
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

    /// Pauses; returns true if it was running.
    pub fn pause(&self, class: ErrorClass, reason: String, until: Option<Instant>) -> bool {
        let mut first = false;
        self.state.send_if_modified(|s| {
            if s.as_ref().is_some_and(|p| p.until.is_none()) {
                return false; // a probe-ended pause stays until its probe passes
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

    pub fn resume(&self) -> bool {
        self.state.send_if_modified(|s| s.take().is_some())
    }

    /// Waits until delivery runs (or `cancel`). Ends circuit pauses when due.
    pub async fn wait_running(&self, cancel: &CancellationToken) {
        let mut rx = self.state.subscribe();
        loop {
            let until = match &*rx.borrow_and_update() {
                None => return,
                Some(p) => p.until,
            };
            let sleep = async {
                match until {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = rx.changed() => {}
                _ = sleep => self.close_circuit_if_due(),
            }
        }
    }

    /// Ends a circuit-breaker pause whose time is up.
    fn close_circuit_if_due(&self) {
        self.state.send_if_modified(|s| {
            let due = s
                .as_ref()
                .is_some_and(|p| p.until.is_some_and(|u| u <= Instant::now()));
            if due {
                *s = None;
                tracing::info!("circuit breaker closed: delivery resumes");
            }
            due
        });
    }
}

// -------------------------------------------------------------- throttle

/// The shared rate limiter: `rate_per_second` with `burst`, lowered after a
/// 429 and recovering slowly.
pub struct Throttle {
    limiter: RwLock<Option<Arc<DefaultDirectRateLimiter>>>,
    base_rate: AtomicU64,
    burst: AtomicU64,
    /// Current fraction of the base rate, in thousandths.
    factor_milli: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Throttle {
    pub fn new(rate: u32, burst: u32, metrics: Arc<Metrics>) -> Self {
        let t = Self {
            limiter: RwLock::new(None),
            base_rate: AtomicU64::new(u64::from(rate)),
            burst: AtomicU64::new(u64::from(burst.max(1))),
            factor_milli: AtomicU64::new(1000),
            metrics,
        };
        t.rebuild();
        t
    }

    fn rebuild(&self) {
        let rate = self.base_rate.load(Ordering::Relaxed) as f64
            * self.factor_milli.load(Ordering::Relaxed) as f64
            / 1000.0;
        let limiter = (self.base_rate.load(Ordering::Relaxed) > 0).then(|| {
            let burst = NonZeroU32::new(self.burst.load(Ordering::Relaxed) as u32)
                .unwrap_or(NonZeroU32::MIN);
            let period = Duration::from_secs_f64(1.0 / rate.max(0.01));
            let quota = Quota::with_period(period)
                .expect("non-zero period")
                .allow_burst(burst);
            Arc::new(RateLimiter::direct(quota))
        });
        *self.limiter.write().expect("throttle") = limiter;
    }

    /// Applies a reloaded rate and burst.
    pub fn set(&self, rate: u32, burst: u32) {
        self.base_rate.store(u64::from(rate), Ordering::Relaxed);
        self.burst.store(u64::from(burst.max(1)), Ordering::Relaxed);
        self.rebuild();
    }

    /// Waits for a permit for one request.
    pub async fn wait(&self) {
        let limiter = self.limiter.read().expect("throttle").clone();
        if let Some(l) = limiter {
            let start = Instant::now();
            l.until_ready().await;
            self.metrics.limiter_wait(start.elapsed());
        }
    }

    /// Halves the effective rate (down to a tenth of the base).
    pub fn slow_down(&self) {
        let f = self.factor_milli.load(Ordering::Relaxed);
        let next = (f / 2).max(100);
        if next != f {
            self.factor_milli.store(next, Ordering::Relaxed);
            self.rebuild();
            tracing::warn!(
                rate_fraction = next as f64 / 1000.0,
                "rate limited by the server: lowering the request rate"
            );
        }
    }

    /// Raises the effective rate by a tenth, back up to the base.
    pub fn recover(&self) {
        let f = self.factor_milli.load(Ordering::Relaxed);
        if f < 1000 {
            let next = (f + f / 10 + 1).min(1000);
            self.factor_milli.store(next, Ordering::Relaxed);
            self.rebuild();
            if next == 1000 {
                tracing::info!("request rate recovered to delivery.rate_per_second");
            }
        }
    }

    pub fn fraction(&self) -> f64 {
        self.factor_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

/// One WARN line per burst of burials (a batch of results), by class, with
/// one example each: thousands of rejected rows make a few lines, not
/// thousands. `dead_letters` has every one.
fn log_burials(batch: &[JobUpdate]) {
    let mut by_class: std::collections::BTreeMap<ErrorClass, (u64, &str)> =
        std::collections::BTreeMap::new();
    for u in batch {
        if let JobUpdate::Bury { error, .. } = u {
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

// --------------------------------------------------------------- breaker

/// Opens (pauses all delivery for a while) when most recent requests failed
/// transiently, instead of hammering a sick server.
#[derive(Debug, Default)]
struct Breaker {
    recent: VecDeque<bool>,
    trips: u32,
}

const BREAKER_WINDOW: usize = 20;
const BREAKER_THRESHOLD: usize = 16;

impl Breaker {
    /// Records whether a request failed transiently; returns how long to
    /// open for, when it trips.
    fn record(&mut self, failed: bool, cfg: &DeliveryConfig) -> Option<Duration> {
        self.recent.push_back(failed);
        if self.recent.len() > BREAKER_WINDOW {
            self.recent.pop_front();
        }
        if !failed && self.recent.iter().all(|f| !f) {
            self.trips = 0;
        }
        let failures = self.recent.iter().filter(|f| **f).count();
        if self.recent.len() == BREAKER_WINDOW && failures >= BREAKER_THRESHOLD {
            self.recent.clear();
            self.trips += 1;
            let open = cfg
                .backoff_base
                .saturating_mul(1u32 << self.trips.min(10))
                .min(cfg.backoff_max);
            return Some(open.max(Duration::from_millis(100)));
        }
        None
    }
}

// -------------------------------------------------------------- delivery

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
    held: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Whether a pause is shown in the queue and the metrics. Recording and
    /// clearing hold this lock and clearing looks at the gate inside it, so
    /// a pause that starts meanwhile is never wiped from `status`.
    pause_shown: Arc<tokio::sync::Mutex<bool>>,
}

/// Claims per dispatcher round, at most.
const CLAIM_BATCH: usize = 64;
/// How often an idle dispatcher looks for jobs queued by another process.
const POLL: Duration = Duration::from_millis(250);

impl Delivery {
    pub fn new(
        queue: Queue,
        api: watch::Receiver<Arc<Api>>,
        cfg: watch::Receiver<Arc<Config>>,
        metrics: Arc<Metrics>,
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
            breaker: Arc::new(Mutex::new(Breaker::default())),
            held: Arc::default(),
            pause_shown: Arc::default(),
        }
    }

    fn config(&self) -> Arc<Config> {
        self.cfg.borrow().clone()
    }

    /// Runs every delivery task until `cancel`, then shuts down in order:
    /// stop claiming, let in-flight requests finish within the grace time,
    /// write every result, return unfinished leases.
    ///
    /// # Errors
    /// Database errors (a task failure).
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let cfg = self.config();
        let workers = cfg.delivery.workers;
        let (job_tx, job_rx) = mpsc::channel::<Job>(workers * 2);
        let job_rx = Arc::new(tokio::sync::Mutex::new(job_rx));
        let (res_tx, res_rx) = mpsc::channel::<JobUpdate>(4096);
        let worker_cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        for _ in 0..workers {
            let (d, rx, tx) = (self.clone(), job_rx.clone(), res_tx.clone());
            let (soft, hard) = (cancel.clone(), worker_cancel.clone());
            tracker.spawn(async move { d.worker(rx, tx, soft, hard).await });
        }
        drop(res_tx);
        let writer = tokio::spawn(self.clone().writer(res_rx));
        let side = CancellationToken::new();
        let prober = tokio::spawn(self.clone().prober(side.clone()));
        let recover = tokio::spawn(self.clone().recovery(side.clone()));

        let dispatched = self.dispatcher(job_tx, &cancel).await;

        // Shutdown: the dispatcher has stopped and closed the job channel.
        // Workers finish their current request; after the grace time they
        // are told to stop at once.
        tracker.close();
        let grace = self.config().delivery.shutdown_grace;
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "in-flight requests did not finish within the shutdown grace"
            );
            worker_cancel.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
        }
        side.cancel();
        let _ = prober.await;
        let _ = recover.await;
        let written = writer
            .await
            .map_err(|e| anyhow::anyhow!("result writer failed: {e}"))?;
        let released = self.queue.release_all_leases().await?;
        if released > 0 {
            tracing::info!(jobs = released, "returned unfinished leases to pending");
        }
        dispatched.and(written)
    }

    async fn dispatcher(
        &self,
        job_tx: mpsc::Sender<Job>,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            self.gate.wait_running(cancel).await;
            if cancel.is_cancelled() {
                return Ok(());
            }
            self.clear_recorded_pause().await?;
            let permit_room = job_tx.capacity();
            if permit_room == 0 {
                // Wait for a worker to take one.
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    r = job_tx.reserve() => { drop(r); }
                }
                continue;
            }
            let lease = self.config().queue.lease;
            let jobs = self
                .queue
                .claim(permit_room.min(CLAIM_BATCH), lease)
                .await?;
            if jobs.is_empty() {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = self.work_added.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
                continue;
            }
            for job in jobs {
                if job_tx.send(job).await.is_err() {
                    return Ok(());
                }
            }
        }
    }

    /// Takes jobs until the channel closes. After `soft` (shutdown) a job
    /// starts no new request and is released; after `hard` (the grace time
    /// is over) the request in flight is dropped and the job released.
    async fn worker(
        &self,
        rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
        tx: mpsc::Sender<JobUpdate>,
        soft: CancellationToken,
        hard: CancellationToken,
    ) {
        loop {
            let job = { rx.lock().await.recv().await };
            let Some(job) = job else { return };
            let update = tokio::select! {
                u = self.deliver(&job, &soft) => u,
                _ = hard.cancelled() => JobUpdate::Reschedule {
                    id: job.id,
                    steps_done: job.steps_done,
                    at: now_ms(),
                    count_attempt: false,
                    error: None,
                },
            };
            if tx.send(update).await.is_err() {
                return;
            }
        }
    }

    /// Delivers one job's remaining steps and says what became of it.
    pub async fn deliver(&self, job: &Job, cancel: &CancellationToken) -> JobUpdate {
        let cfg = self.config();
        let d = &cfg.delivery;
        let (indicator, payload) = match job.parse() {
            Ok(p) => p,
            Err(message) => {
                return JobUpdate::Bury {
                    id: job.id,
                    steps_done: job.steps_done,
                    error: JobError {
                        class: ErrorClass::InvalidJob,
                        http_status: None,
                        message,
                    },
                };
            }
        };
        let release = |steps_done: u32| JobUpdate::Reschedule {
            id: job.id,
            steps_done,
            at: now_ms(),
            count_attempt: false,
            error: None,
        };
        if self.held.lock().expect("held").contains(&job.owner) {
            return JobUpdate::Hold {
                id: job.id,
                steps_done: job.steps_done,
                error: JobError {
                    class: ErrorClass::Held,
                    http_status: None,
                    message: "owner held: waiting for access".into(),
                },
            };
        }
        let total = payload.steps() as u32;
        let mut step = job.steps_done;
        let mut clock_corrected = false;
        while step < total {
            if cancel.is_cancelled() || self.gate.paused().is_some() {
                return release(step);
            }
            let api = self.api.borrow().clone();
            let Some(req) = api
                .endpoints
                .step(&indicator, &payload, &job.owner, step as usize)
            else {
                break;
            };
            self.throttle.wait().await;
            if self.gate.paused().is_some() {
                return release(step);
            }
            let started = Instant::now();
            let resp = api.client.send(&req).await;
            self.metrics
                .request(resp.outcome.class(), started.elapsed());
            tracing::debug!(
                job = job.id,
                step,
                class = %resp.outcome.class(),
                status = resp.status,
                "request"
            );
            let transient = matches!(
                resp.outcome,
                Outcome::ServerError { .. } | Outcome::Transport { .. }
            );
            let trip = self.breaker.lock().expect("breaker").record(transient, d);
            if let Some(open) = trip {
                let reason = format!(
                    "circuit open: most recent requests failed ({}); pausing delivery for {:.1}s",
                    resp.outcome.message(),
                    open.as_secs_f32()
                );
                if self.gate.pause(
                    ErrorClass::CircuitOpen,
                    reason.clone(),
                    Some(Instant::now() + open),
                ) {
                    tracing::warn!(open_secs = open.as_secs_f32(), last = %resp.outcome.message(), "circuit breaker open: most recent requests failed");
                    self.record_pause(ErrorClass::CircuitOpen, reason).await;
                }
            }
            let error = || JobError {
                class: resp.outcome.class(),
                http_status: resp.status,
                message: resp.outcome.message(),
            };
            match policy(&resp.outcome, clock_corrected) {
                Action::NextStep => {
                    step += 1;
                    clock_corrected = false;
                }
                Action::CorrectClockAndRetry => {
                    if let Outcome::TimestampOutOfRange {
                        server_date: Some(t),
                    } = &resp.outcome
                    {
                        let offset = api.client.clock().correct_to(*t);
                        tracing::warn!(
                            offset_secs = offset,
                            "server says our clock is off: correcting the signing timestamp"
                        );
                    }
                    clock_corrected = true;
                }
                Action::PauseAll { class, reason } => {
                    self.pause(class, reason).await;
                    return JobUpdate::Reschedule {
                        id: job.id,
                        steps_done: step,
                        at: now_ms(),
                        count_attempt: false,
                        error: Some(error()),
                    };
                }
                Action::HoldOwner => {
                    self.hold(&job.owner, &resp.outcome).await;
                    return JobUpdate::Hold {
                        id: job.id,
                        steps_done: step,
                        error: error(),
                    };
                }
                Action::Bury => {
                    tracing::debug!(job = job.id, owner = %job.owner, value = %job.value, class = %resp.outcome.class(), message = %resp.outcome.message(), "job buried");
                    return JobUpdate::Bury {
                        id: job.id,
                        steps_done: step,
                        error: error(),
                    };
                }
                Action::RateLimited { retry_after } => {
                    self.throttle.slow_down();
                    let wait = retry_after.unwrap_or(Duration::from_secs(5));
                    return JobUpdate::Reschedule {
                        id: job.id,
                        steps_done: step,
                        at: now_ms() + wait.as_millis() as i64,
                        count_attempt: false,
                        error: Some(error()),
                    };
                }
                Action::Backoff => {
                    let attempts = job.attempts + 1;
                    if attempts >= d.max_attempts {
                        tracing::debug!(job = job.id, attempts, class = %resp.outcome.class(), message = %resp.outcome.message(), "job buried after the maximum attempts");
                        return JobUpdate::Bury {
                            id: job.id,
                            steps_done: step,
                            error: error(),
                        };
                    }
                    let delay = backoff(attempts, d.backoff_base, d.backoff_max);
                    return JobUpdate::Reschedule {
                        id: job.id,
                        steps_done: step,
                        at: now_ms() + delay.as_millis() as i64,
                        count_attempt: true,
                        error: Some(error()),
                    };
                }
            }
        }
        JobUpdate::Delivered { id: job.id }
    }

    async fn pause(&self, class: ErrorClass, reason: String) {
        if self.gate.pause(class, reason.clone(), None) {
            tracing::error!(class = %class, reason = %reason, "delivery paused");
            self.record_pause(class, reason).await;
        }
    }

    /// Shows a pause in `status` (through the queue) and in the metrics,
    /// until the dispatcher sees delivery running again.
    async fn record_pause(&self, class: ErrorClass, reason: String) {
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
    /// `status` and the metrics say so.
    async fn clear_recorded_pause(&self) -> anyhow::Result<()> {
        let mut shown = self.pause_shown.lock().await;
        if *shown && self.gate.paused().is_none() {
            self.queue.set_pause(None).await?;
            self.metrics.set_paused(false);
            *shown = false;
        }
        Ok(())
    }

    async fn hold(&self, owner: &str, outcome: &Outcome) {
        self.held.lock().expect("held").insert(owner.to_string());
        match self
            .queue
            .hold_owner(owner, outcome.class(), &outcome.message())
            .await
        {
            Ok(true) => {
                tracing::warn!(owner, class = %outcome.class(), message = %outcome.message(), advice = outcome.advice().unwrap_or(""), "owner held: its jobs wait, other owners go on");
                if let (Ok(with_work), Ok(held)) = (
                    self.queue.owners_with_work().await,
                    self.queue.held_owners().await,
                ) && with_work.iter().all(|o| held.iter().any(|h| &h.owner == o))
                {
                    tracing::error!(
                        owners = held.len(),
                        "every owner with work is held: nothing can be delivered until access is restored"
                    );
                }
            }
            Ok(false) => {}
            Err(e) => tracing::error!(owner, error = %e, "cannot hold the owner"),
        }
    }

    /// Applies results in batches: one transaction for everything waiting.
    async fn writer(self, mut rx: mpsc::Receiver<JobUpdate>) -> anyhow::Result<()> {
        let mut batch = Vec::with_capacity(512);
        while let Some(u) = rx.recv().await {
            batch.push(u);
            while batch.len() < 512 {
                match rx.try_recv() {
                    Ok(u) => batch.push(u),
                    Err(_) => break,
                }
            }
            self.queue.apply(&batch).await?;
            log_burials(&batch);
            batch.clear();
        }
        Ok(())
    }

    /// While delivery is paused: probes `GET /v2/owners` first after
    /// `probe_min`, then at a doubling interval up to `probe_max`, or at once
    /// on `probe_now` (SIGHUP), and resumes when a probe passes. Otherwise:
    /// every `probe_min`, releases held owners the API lists again.
    async fn prober(self, cancel: CancellationToken) {
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
            if let Some(p) = self.gate.paused().filter(|p| p.until.is_none()) {
                let due = *pause_probe_at.get_or_insert(now + interval);
                if !forced && now < due {
                    continue;
                }
                let mut result = api.client.owners().await;
                if let Err(Outcome::TimestampOutOfRange {
                    server_date: Some(t),
                }) = &result
                {
                    api.client.clock().correct_to(*t);
                    result = api.client.owners().await;
                }
                match result {
                    Ok(_) => {
                        // The dispatcher, waking, clears the pause from the
                        // queue and the metrics.
                        self.gate.resume();
                        tracing::info!(was = %p.class, "probe passed: delivery resumes");
                        self.work_added.notify_one();
                    }
                    Err(o) => {
                        interval = (interval * 2).min(cfg.delivery.probe_max);
                        pause_probe_at = Some(Instant::now() + interval);
                        tracing::warn!(
                            class = %o.class(),
                            next_probe_secs = interval.as_secs(),
                            "still paused: {}",
                            p.reason
                        );
                    }
                }
                continue;
            }
            pause_probe_at = None;
            interval = cfg.delivery.probe_min;
            if now < next_owner_probe && !forced {
                continue;
            }
            next_owner_probe = now + cfg.delivery.probe_min;
            let Ok(held) = self.queue.held_owners().await else {
                continue;
            };
            if held.is_empty() {
                continue;
            }
            let Ok(visible) = api.client.owners().await else {
                continue;
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

    /// Lets the rate climb back after a 429.
    async fn recovery(self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(10)) => self.throttle.recover(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn policy_covers_every_class() {
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
                    server_date: Some(SystemTime::now()),
                },
                Action::CorrectClockAndRetry,
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
            (Outcome::NotFound, Action::Bury),
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
                Action::Backoff,
            ),
            (
                Outcome::Transport {
                    message: "reset".into(),
                },
                Action::Backoff,
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
        assert!(matches!(
            policy(&Outcome::Unauthorized, false),
            Action::PauseAll {
                class: ErrorClass::Unauthorized,
                ..
            }
        ));
        let again = policy(
            &Outcome::TimestampOutOfRange {
                server_date: Some(SystemTime::now()),
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

    #[test]
    fn breaker_trips_only_when_most_requests_fail() {
        let cfg = DeliveryConfig {
            workers: 1,
            rate_per_second: 0,
            burst: 1,
            max_attempts: 3,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(1),
            probe_min: Duration::from_secs(1),
            probe_max: Duration::from_secs(2),
        };
        let mut b = Breaker::default();
        // 30% failures never trip it.
        for i in 0..200 {
            assert_eq!(b.record(i % 10 < 3, &cfg), None);
        }
        let mut tripped = None;
        for _ in 0..BREAKER_WINDOW {
            tripped = tripped.or(b.record(true, &cfg));
        }
        assert!(tripped.is_some());
    }
}
