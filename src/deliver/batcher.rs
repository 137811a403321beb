//! Bulk delivery through the batch API (tc-api.md section 5): which owners
//! go by batch, forming batch jobs, and driving each one through its
//! durable steps (ARCHITECTURE.md, "Bulk modes").
//!
//! A batch job's steps, each recorded before the next call: `new` (its jobs
//! chosen) → create at ThreatConnect → `created` (its id stored) →
//! `uploading` (recorded before the upload is sent) → `uploaded` (the 202
//! came) → polls → `done` (results applied) or `failed` (jobs returned). After
//! a crash, `uploading` is checked with a status GET before any new upload:
//! `Created` means the data never arrived; anything later is only polled.
//! So no indicator is in two ThreatConnect batch jobs because of a restart.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Delivery;
use super::policy::{Action, backoff, policy};
use crate::api::batch::{self as wire, ItemError};
use crate::api::{ApiRequest, Outcome, Response};
use crate::config::{Config, DeliveryMode};
use crate::names::ErrorClass;
use crate::queue::{BatchCandidate, BatchJob, BatchOutcome, BatchOwners, BatchState, Job, now_ms};

/// How long an owner whose instance said the batch API is off goes per
/// indicator before batch is tried again.
const FALLBACK_FOR: Duration = Duration::from_secs(600);
/// How often the batcher looks at the backlog when nothing wakes it.
const LOOK: Duration = Duration::from_secs(1);

/// What the batcher shares with the dispatcher and `status`.
#[derive(Debug, Default)]
pub struct Bulk {
    /// Owners whose due jobs go by batch now: the dispatcher leaves their
    /// batchable jobs alone.
    owners: Mutex<BTreeSet<String>>,
    /// Owners told "batch not available", and until when they go per indicator.
    fallback: Mutex<HashMap<String, Instant>>,
    /// The upload limit the instance told us (0: not told).
    learned_max_bytes: AtomicUsize,
    /// The last batch call was retried after a clock correction.
    clock_corrected: AtomicBool,
    /// When `owners` was last decided.
    decided_at: Mutex<Option<Instant>>,
}

/// How long a decision of which owners go by batch holds.
const DECISION_HOLDS: Duration = Duration::from_millis(250);

/// How a batch call ended when it did not succeed.
enum Failed {
    /// Try the step again after this wait.
    Retry(Duration),
    /// Give the batch job up; its jobs go back to pending.
    Abandon {
        error: String,
        uncertain: bool,
        class: Option<ErrorClass>,
    },
}

impl Delivery {
    /// The owners whose batchable jobs the dispatcher leaves to the batcher:
    /// in `batch` mode every owner's but those the batch API failed; in
    /// `auto` those the batcher chose.
    pub(super) fn batching_owners(&self) -> BatchOwners {
        match self.config().delivery.mode {
            DeliveryMode::V2 | DeliveryMode::V3 => BatchOwners::None,
            DeliveryMode::Batch => {
                let now = Instant::now();
                let fallback = self.bulk.fallback.lock().expect("bulk");
                BatchOwners::AllBut(
                    fallback
                        .iter()
                        .filter(|(_, until)| **until > now)
                        .map(|(o, _)| o.clone())
                        .collect(),
                )
            }
            DeliveryMode::Auto => BatchOwners::Only(
                self.bulk
                    .owners
                    .lock()
                    .expect("bulk")
                    .iter()
                    .cloned()
                    .collect(),
            ),
        }
    }

    /// Forms and drives batch jobs until `stop`: first the ones a previous
    /// run left open, then new ones while owners' backlogs call for batch.
    pub(super) async fn batcher(&self, stop: &CancellationToken) -> anyhow::Result<()> {
        let mut drivers: JoinSet<anyhow::Result<()>> = JoinSet::new();
        for b in self.queue.open_batches().await? {
            tracing::info!(batch = b.id, tc_batch_id = b.tc_batch_id, state = ?b.state, "resuming a batch job");
            let (d, stop) = (self.clone(), stop.clone());
            drivers.spawn(async move { d.drive(b, &stop).await });
        }
        loop {
            while let Some(done) = drivers.try_join_next() {
                done??;
            }
            self.gate.wait_running(stop).await;
            if stop.is_cancelled() {
                break;
            }
            let cfg = self.config();
            let owners = self.choose_batch_owners(&cfg).await?;
            let mut formed = false;
            for owner in &owners {
                if drivers.len() >= cfg.batch.jobs_in_flight {
                    break;
                }
                if let Some(b) = self.form(owner, &cfg).await? {
                    formed = true;
                    let (d, stop) = (self.clone(), stop.clone());
                    drivers.spawn(async move { d.drive(b, &stop).await });
                }
            }
            if formed && drivers.len() < cfg.batch.jobs_in_flight {
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                Some(done) = drivers.join_next(), if !drivers.is_empty() => done??,
                _ = self.work_added.notified() => {}
                _ = tokio::time::sleep(LOOK) => {}
            }
        }
        // Every step is durable: what is in flight resumes at the next start.
        let grace = self.config().delivery.shutdown_grace;
        let _ = tokio::time::timeout(grace, async {
            while drivers.join_next().await.is_some() {}
        })
        .await;
        drivers.abort_all();
        Ok(())
    }

    /// Decides again which owners go by batch in `auto` mode, unless that
    /// was decided within [`DECISION_HOLDS`]: the dispatcher calls this
    /// before each claim, so that a backlog that just grew past
    /// `batch.min_indicators` is not claimed per indicator first.
    pub(super) async fn refresh_batch_owners(&self) -> anyhow::Result<()> {
        let cfg = self.config();
        if cfg.delivery.mode != DeliveryMode::Auto {
            return Ok(());
        }
        let fresh = self
            .bulk
            .decided_at
            .lock()
            .expect("bulk")
            .is_some_and(|at| at.elapsed() < DECISION_HOLDS);
        if !fresh {
            self.choose_batch_owners(&cfg).await?;
        }
        Ok(())
    }

    /// Which owners go by batch now (largest backlog first), shared with
    /// the dispatcher.
    pub(super) async fn choose_batch_owners(&self, cfg: &Config) -> anyhow::Result<Vec<String>> {
        let mode = cfg.delivery.mode;
        let mut chosen: Vec<(String, u64)> = Vec::new();
        if matches!(mode, DeliveryMode::Auto | DeliveryMode::Batch) {
            let now = Instant::now();
            self.bulk
                .fallback
                .lock()
                .expect("bulk")
                .retain(|_, until| *until > now);
            // Enough to rank owners by backlog up to a full batch job.
            let enough = cfg.batch.min_indicators.max(cfg.batch.max_indicators) as u64;
            for (owner, n) in self.queue.batch_backlog(enough).await? {
                let wanted = mode == DeliveryMode::Batch || n >= cfg.batch.min_indicators as u64;
                if wanted && !self.falling_back(&owner) {
                    chosen.push((owner, n));
                }
            }
        }
        chosen.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let owners: Vec<String> = chosen.into_iter().map(|(o, _)| o).collect();
        *self.bulk.owners.lock().expect("bulk") = owners.iter().cloned().collect();
        *self.bulk.decided_at.lock().expect("bulk") = Some(Instant::now());
        Ok(owners)
    }

    /// Forms one batch job of `owner`'s due jobs: up to `max_indicators`,
    /// a data file under the upload limit, and one item per indicator.
    async fn form(&self, owner: &str, cfg: &Config) -> anyhow::Result<Option<BatchJob>> {
        // A driver may have fallen back since the owners were chosen.
        if self.falling_back(owner) {
            return Ok(None);
        }
        let max_bytes = match self.bulk.learned_max_bytes.load(Ordering::Relaxed) {
            0 => cfg.batch.max_bytes,
            learned => learned.min(cfg.batch.max_bytes),
        };
        let candidates = self
            .queue
            .batch_candidates(owner, cfg.batch.max_indicators)
            .await?;
        let endpoints = self.api.borrow().endpoints.clone();
        let (mut ids, mut sizes, mut seen) = (Vec::new(), Vec::new(), HashSet::new());
        for c in candidates {
            // Two jobs of one indicator wait for separate batch jobs, so that
            // an item's error names one job.
            if !seen.insert((c.kind.clone(), c.value.clone())) {
                continue;
            }
            let item = match item_bytes(&endpoints, &c) {
                Ok(item) => item,
                Err(message) => {
                    // Batch mode would leave it waiting: bury it as a
                    // per-indicator worker would.
                    self.queue.bury_invalid(c.id, &message).await?;
                    continue;
                }
            };
            let size = wire::data_file_len(sizes.iter().copied().chain([item.len()]));
            // One item alone over the limit still goes, alone: if the
            // instance refuses it, it goes per indicator (`failed`).
            if size > max_bytes && !ids.is_empty() {
                break;
            }
            ids.push(c.id);
            sizes.push(item.len());
        }
        let bytes = wire::data_file_len(sizes.iter().copied());
        let b = self.queue.form_batch(owner, &ids, bytes).await?;
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

    /// Takes a batch job through its remaining steps.
    async fn drive(&self, mut b: BatchJob, stop: &CancellationToken) -> anyhow::Result<()> {
        let mut poll_wait = self.config().batch.poll_min;
        // Consecutive failed calls of this batch job.
        let mut failures = 0u32;
        loop {
            self.gate.wait_running(stop).await;
            if stop.is_cancelled() {
                return Ok(());
            }
            let cfg = self.config();
            let step = match (b.state, b.tc_batch_id) {
                (BatchState::Done | BatchState::Failed, _) => return Ok(()),
                (BatchState::New, _) | (_, None) => self.create(&mut b, &cfg, failures + 1).await?,
                (BatchState::Created, Some(id)) => self.upload(&mut b, id).await?,
                (BatchState::Uploading, Some(id)) => self.check_upload(&mut b, id).await?,
                (BatchState::Uploaded, Some(id)) => {
                    if let Some(f) = self.timed_out(&b, &cfg) {
                        Err(f)
                    } else {
                        tokio::select! {
                            _ = stop.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(poll_wait) => {}
                        }
                        poll_wait = poll_wait.mul_f64(1.5).min(cfg.batch.poll_max);
                        self.poll(&mut b, id).await?
                    }
                }
            };
            match step {
                Ok(()) => {
                    failures = 0;
                    self.bulk.clock_corrected.store(false, Ordering::Relaxed);
                }
                Err(Failed::Retry(wait)) => {
                    failures += 1;
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Err(Failed::Abandon {
                    error,
                    uncertain,
                    class,
                }) => {
                    let n = self
                        .queue
                        .abandon_batch(b.id, &error, uncertain, class, now_ms())
                        .await?;
                    self.metrics.batch_job("failed");
                    self.metrics.batch_items("returned", n);
                    tracing::warn!(batch = b.id, tc_batch_id = b.tc_batch_id, jobs = n, uncertain, %error, "batch job given up: its jobs are pending again");
                    b.state = BatchState::Failed;
                }
            }
        }
    }

    /// `POST /v2/batch`: ThreatConnect's job, its id stored.
    /// `attempt`: tries of this call so far, this one included.
    async fn create(
        &self,
        b: &mut BatchJob,
        cfg: &Config,
        attempt: u32,
    ) -> anyhow::Result<Result<(), Failed>> {
        let resp = self
            .batch_call(&b.owner, &wire::create(&b.owner, &cfg.batch))
            .await;
        if resp.outcome != Outcome::Success {
            return Ok(Err(self.failed(b, &resp.outcome, attempt).await));
        }
        match wire::created_id(&resp.body) {
            Ok(id) => {
                self.queue.batch_created(b.id, id).await?;
                b.state = BatchState::Created;
                b.tc_batch_id = Some(id);
                tracing::debug!(batch = b.id, tc_batch_id = id, "batch job created");
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(Failed::Retry(self.note_failure(b, &e)))),
        }
    }

    /// `POST /v2/batch/<id>`, recorded as tried before it is sent.
    async fn upload(&self, b: &mut BatchJob, id: i64) -> anyhow::Result<Result<(), Failed>> {
        let items = self.queue.batch_items(b.id).await?;
        if items.is_empty() {
            // Nothing left in it (its jobs were requeued by hand).
            return Ok(Err(Failed::Abandon {
                error: "no jobs left in the batch job".into(),
                uncertain: false,
                class: None,
            }));
        }
        let endpoints = self.api.borrow().endpoints.clone();
        let data: Vec<Vec<u8>> = items
            .iter()
            .map(|c| item_bytes(&endpoints, c).unwrap_or_else(|_| b"{}".to_vec()))
            .collect();
        let data = bytes::Bytes::from(wire::data_file(&data));
        self.queue.batch_uploading(b.id).await?;
        b.state = BatchState::Uploading;
        b.upload_attempts += 1;
        let resp = self.batch_call(&b.owner, &wire::upload(id, data)).await;
        if resp.outcome != Outcome::Success {
            return Ok(Err(self.failed(b, &resp.outcome, b.upload_attempts).await));
        }
        self.queue.batch_uploaded(b.id).await?;
        b.state = BatchState::Uploaded;
        b.uploaded_at = Some(now_ms());
        tracing::debug!(
            batch = b.id,
            tc_batch_id = id,
            items = items.len(),
            "batch data uploaded"
        );
        Ok(Ok(()))
    }

    /// An upload that may or may not have arrived: `Created` at
    /// ThreatConnect means it did not (upload again), anything later means
    /// it did (poll).
    async fn check_upload(&self, b: &mut BatchJob, id: i64) -> anyhow::Result<Result<(), Failed>> {
        let resp = self.batch_call(&b.owner, &wire::status(id)).await;
        if resp.outcome != Outcome::Success {
            return Ok(Err(self.failed(b, &resp.outcome, b.upload_attempts).await));
        }
        let max_attempts = self.config().delivery.max_attempts;
        match wire::parse_status(&resp.body) {
            Ok(s) if s.awaits_data() && b.upload_attempts >= max_attempts => {
                Ok(Err(Failed::Abandon {
                    error: format!(
                        "the data of batch job {id} did not arrive after {} uploads",
                        b.upload_attempts
                    ),
                    uncertain: false,
                    class: Some(ErrorClass::BatchFailed),
                }))
            }
            Ok(s) if s.awaits_data() => {
                tracing::info!(
                    batch = b.id,
                    tc_batch_id = id,
                    "the batch upload did not arrive: sending it again"
                );
                b.state = BatchState::Created;
                self.upload(b, id).await
            }
            Ok(s) => {
                tracing::info!(batch = b.id, tc_batch_id = id, status = %s.status, "the batch upload arrived: polling it");
                self.queue.batch_uploaded(b.id).await?;
                b.state = BatchState::Uploaded;
                b.uploaded_at.get_or_insert(now_ms());
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(Failed::Retry(self.note_failure(b, &e)))),
        }
    }

    /// `GET /v2/batch/<id>`; once `Completed`, its results applied.
    async fn poll(&self, b: &mut BatchJob, id: i64) -> anyhow::Result<Result<(), Failed>> {
        let resp = self.batch_call(&b.owner, &wire::status(id)).await;
        if resp.outcome != Outcome::Success {
            return Ok(Err(self.failed(b, &resp.outcome, 1).await));
        }
        let status = match wire::parse_status(&resp.body) {
            Ok(s) => s,
            Err(e) => return Ok(Err(Failed::Retry(self.note_failure(b, &e)))),
        };
        self.queue.batch_polled(b.id, &status.status).await?;
        b.polls += 1;
        b.tc_status = Some(status.status.clone());
        if !status.is_completed() {
            return Ok(Ok(()));
        }
        let errors = if status.error_count > 0 {
            match self.item_errors(&b.owner, id).await {
                Ok(e) => e,
                Err(f) => return Ok(Err(f)),
            }
        } else {
            Vec::new()
        };
        let items = self.queue.batch_items(b.id).await?;
        let mut outcome = map_results(&items, &errors, &status, id);
        outcome.retry_in_ms = self.config().batch.poll_max.as_millis() as i64;
        self.queue.finish_batch(b.id, &outcome).await?;
        let returned = (outcome.unprocessed.len() + outcome.uncertain.len()) as u64;
        let delivered = items.len() as u64 - outcome.refused.len() as u64 - returned;
        self.metrics.batch_job("done");
        self.metrics.batch_items("delivered", delivered);
        self.metrics
            .batch_items("refused", outcome.refused.len() as u64);
        self.metrics.batch_items("returned", returned);
        tracing::info!(
            batch = b.id,
            tc_batch_id = id,
            delivered,
            refused = outcome.refused.len(),
            returned,
            "batch job completed"
        );
        b.state = BatchState::Done;
        Ok(Ok(()))
    }

    /// The item errors of a completed job: `/results`, or `/errors` on
    /// instances that do not have it. Both missing (404) is no list at all:
    /// with `errorCount > 0`, every item not known delivered then goes per
    /// indicator ([`map_results`]), rather than the job waiting for a list
    /// that will not come until `batch.timeout_secs`.
    async fn item_errors(&self, owner: &str, id: i64) -> Result<Vec<ItemError>, Failed> {
        let resp = self.batch_call(owner, &wire::results(id)).await;
        let parsed = match resp.outcome {
            Outcome::Success => wire::parse_results(&resp.body),
            Outcome::NotFound => {
                let resp = self.batch_call(owner, &wire::errors(id)).await;
                match resp.outcome {
                    Outcome::Success => wire::parse_errors(&resp.body),
                    Outcome::NotFound => {
                        tracing::warn!(
                            tc_batch_id = id,
                            "the batch job reports errors but lists none: its items go per indicator"
                        );
                        Ok(Vec::new())
                    }
                    other => Err(other.message()),
                }
            }
            other => Err(other.message()),
        };
        parsed.map_err(|e| {
            tracing::warn!(tc_batch_id = id, error = %e, "cannot read the batch job's errors yet");
            Failed::Retry(self.config().batch.poll_max)
        })
    }

    /// A job not completed within `batch.timeout` of its upload.
    fn timed_out(&self, b: &BatchJob, cfg: &Config) -> Option<Failed> {
        let since = b.uploaded_at.unwrap_or(b.created_at);
        let age = Duration::from_millis((now_ms() - since).max(0) as u64);
        (age > cfg.batch.timeout).then(|| Failed::Abandon {
            error: format!(
                "batch job {} not completed after {} (last status {}): its jobs go per indicator",
                b.tc_batch_id.unwrap_or(0),
                humantime::format_duration(cfg.batch.timeout),
                b.tc_status.as_deref().unwrap_or("unknown")
            ),
            uncertain: true,
            class: Some(ErrorClass::BatchFailed),
        })
    }

    /// Sends a batch call through the rate limiter; its answer counts
    /// towards the circuit breaker like any job's.
    async fn batch_call(&self, owner: &str, req: &ApiRequest) -> Response {
        self.throttle.wait().await;
        let api = self.api.borrow().clone();
        let started = Instant::now();
        let resp = api.client.send(req).await;
        let action = policy(
            &resp.outcome,
            self.bulk.clock_corrected.load(Ordering::Relaxed),
        );
        self.breaker_sees(&self.config().delivery, &action, &resp.outcome)
            .await;
        // Counted under the type `batch`: a batch call is not of one type.
        self.metrics
            .request(owner, "batch", resp.outcome.class(), started.elapsed());
        tracing::debug!(path = %req.path_and_query, class = %resp.outcome.class(), status = resp.status, "batch request");
        resp
    }

    /// What a failed batch call means for the batch job, through the one
    /// policy. `attempts`: tries of this step so far.
    async fn failed(&self, b: &BatchJob, outcome: &Outcome, attempts: u32) -> Failed {
        let cfg = self.config();
        let d = &cfg.delivery;
        let action = policy(outcome, self.bulk.clock_corrected.load(Ordering::Relaxed));
        // Once data may be at ThreatConnect, its jobs must not go by batch again.
        let sent = matches!(b.state, BatchState::Uploading | BatchState::Uploaded);
        match action {
            Action::NextStep => Failed::Retry(Duration::ZERO),
            Action::CorrectClockAndRetry { server_date } => {
                self.bulk.clock_corrected.store(true, Ordering::Relaxed);
                let offset = self.api.borrow().client.clock().correct_to(server_date);
                tracing::warn!(
                    offset_secs = offset,
                    "server says our clock is off: correcting the signing timestamp"
                );
                Failed::Retry(Duration::ZERO)
            }
            Action::PauseAll { class, reason } => {
                self.pause(class, reason).await;
                Failed::Retry(Duration::ZERO)
            }
            // The batch API needs rights that per-indicator calls do not
            // (tc-api.md section 5): the owner goes per indicator, where a
            // real lack of access to it holds it.
            Action::HoldOwner => {
                self.fall_back(&b.owner, outcome);
                Failed::Abandon {
                    error: format!("batch call refused: {}", outcome.message()),
                    uncertain: sent,
                    class: None,
                }
            }
            Action::RateLimited { retry_after } => {
                self.throttle.slow_down();
                Failed::Retry(retry_after.unwrap_or(Duration::from_secs(5)))
            }
            Action::Backoff { .. } => {
                if !sent && attempts >= d.max_attempts {
                    self.fall_back(&b.owner, outcome);
                    return Failed::Abandon {
                        error: format!("batch call failed {attempts} times: {}", outcome.message()),
                        uncertain: false,
                        class: Some(outcome.class()),
                    };
                }
                tracing::debug!(batch = b.id, attempts, error = %outcome.message(), "batch call failed: retrying");
                Failed::Retry(backoff(attempts.max(1), d.backoff_base, d.backoff_max))
            }
            Action::FallBackFromBatch => {
                self.fall_back(&b.owner, outcome);
                Failed::Abandon {
                    error: outcome.message(),
                    uncertain: sent,
                    class: None,
                }
            }
            Action::SplitBatch { .. } if b.items <= 1 => Failed::Abandon {
                error: format!(
                    "an indicator of {} bytes is over the instance's upload limit: it goes per indicator",
                    b.data_bytes
                ),
                // Marked as of unknown outcome so that it is not batched again.
                uncertain: true,
                class: None,
            },
            Action::SplitBatch { limit } => {
                let limit = match limit {
                    0 => (b.data_bytes as usize / 2).max(1024),
                    n => n as usize,
                };
                self.bulk.learned_max_bytes.store(limit, Ordering::Relaxed);
                tracing::warn!(
                    batch = b.id,
                    bytes = b.data_bytes,
                    limit,
                    "the instance takes smaller batch uploads: splitting"
                );
                Failed::Abandon {
                    error: format!(
                        "upload of {} bytes refused (limit {limit}): its jobs go in smaller batch jobs",
                        b.data_bytes
                    ),
                    uncertain: false,
                    class: None,
                }
            }
            // Refused before any data went (a config it refuses, no batch
            // endpoint at all): this owner's jobs go per indicator.
            Action::Bury | Action::NotFound if !sent => {
                self.fall_back(&b.owner, outcome);
                Failed::Abandon {
                    error: format!("batch job refused: {}", outcome.message()),
                    uncertain: false,
                    class: None,
                }
            }
            Action::NotFound => Failed::Abandon {
                error: format!(
                    "ThreatConnect does not know batch job {} (404): lost",
                    b.tc_batch_id.unwrap_or(0)
                ),
                uncertain: true,
                class: Some(ErrorClass::BatchFailed),
            },
            Action::Bury => Failed::Abandon {
                error: format!("batch call refused: {}", outcome.message()),
                uncertain: true,
                class: Some(ErrorClass::BatchFailed),
            },
        }
    }

    /// An answer that did not read as the API documents: retried later.
    fn note_failure(&self, b: &BatchJob, error: &str) -> Duration {
        tracing::warn!(batch = b.id, tc_batch_id = b.tc_batch_id, %error, "unreadable batch answer: retrying");
        self.config().batch.poll_max
    }

    /// Whether `owner` goes per indicator because its batch API is off.
    fn falling_back(&self, owner: &str) -> bool {
        self.bulk
            .fallback
            .lock()
            .expect("bulk")
            .get(owner)
            .is_some_and(|until| *until > Instant::now())
    }

    /// The instance has no batch API: the owner goes per indicator for a
    /// while (said once per fallback).
    fn fall_back(&self, owner: &str, outcome: &Outcome) {
        let first = self
            .bulk
            .fallback
            .lock()
            .expect("bulk")
            .insert(owner.to_string(), Instant::now() + FALLBACK_FOR)
            .is_none();
        self.bulk.owners.lock().expect("bulk").remove(owner);
        if first {
            tracing::warn!(owner, message = %outcome.message(), retry_in_secs = FALLBACK_FOR.as_secs(), advice = outcome.advice().unwrap_or(""), "batch API not usable for this owner (see message): delivering per indicator");
        }
    }

    /// The mode in use now: per owner where it is not the default, then
    /// `*` for every other owner.
    pub fn modes_in_use(&self) -> Vec<(String, String)> {
        let per_indicator = if self.config().per_indicator_v3() {
            "v3"
        } else {
            "v2"
        };
        let now = Instant::now();
        let mut out: Vec<(String, String)> = self
            .bulk
            .owners
            .lock()
            .expect("bulk")
            .iter()
            .map(|o| (o.clone(), "batch".to_string()))
            .collect();
        for (o, until) in self.bulk.fallback.lock().expect("bulk").iter() {
            if *until > now {
                out.push((o.clone(), format!("{per_indicator} (batch API not usable)")));
            }
        }
        out.push(("*".into(), per_indicator.into()));
        out
    }
}

/// The data file item of a job; why not when the row does not parse.
fn item_bytes(endpoints: &crate::api::Endpoints, c: &BatchCandidate) -> Result<Vec<u8>, String> {
    let job = Job {
        lease: crate::queue::Lease { id: c.id, token: 0 },
        owner: String::new(),
        kind: c.kind.clone(),
        value: c.value.clone(),
        payload: c.payload.clone(),
        steps_done: 0,
        attempts: 0,
        call_uncertain: false,
        recheck_attributes: false,
    };
    let (ind, payload) = job.parse()?;
    serde_json::to_vec(&endpoints.batch_item(&ind, &payload)).map_err(|e| e.to_string())
}

/// What becomes of each job of a completed batch job: refused items are
/// buried with ThreatConnect's reason; unprocessed items go back to pending:
/// those after the item a job-level error stopped at, else the last
/// `unprocessCount` (processing goes in order). Nothing is counted delivered
/// or unprocessed on a guess: the item a job-level error names goes back as
/// a call of unknown outcome (per indicator, attributes looked for first),
/// and when the errors and counts do not tell every item's fault apart (an
/// error tied to no item, fewer items tied than `errorCount`, counts that do
/// not add up to the items, unprocessed items not where the counts say),
/// every item not refused goes back that way.
fn map_results(
    items: &[BatchCandidate],
    errors: &[ItemError],
    status: &wire::Status,
    tc_batch_id: i64,
) -> BatchOutcome {
    let mut out = BatchOutcome {
        error_count: status.error_count,
        success_count: status.success_count,
        unprocess_count: status.unprocess_count,
        ..BatchOutcome::default()
    };
    let mut refused: HashSet<usize> = HashSet::new();
    // Items a job-level error stopped at: not refused, not known created.
    let mut stopped_at: HashSet<usize> = HashSet::new();
    let mut untied = false;
    let mut fatal = None;
    for e in errors {
        let index = e.item.filter(|i| *i < items.len()).or_else(|| {
            let s = e.summary.as_deref()?;
            items.iter().position(|c| c.value == s)
        });
        if e.fatal {
            fatal = Some(e.reason.clone());
        }
        let Some(i) = index else {
            untied = true;
            continue;
        };
        if e.fatal {
            // A job-level error names no item's fault, whatever path it gives.
            stopped_at.insert(i);
        } else if refused.insert(i) {
            out.refused.push((items[i].id, e.reason.clone()));
        }
    }
    let open = |i: &usize| !refused.contains(i) && !stopped_at.contains(i);
    let unprocessed: Vec<usize> = match stopped_at.iter().min() {
        Some(&stop) => (stop + 1..items.len()).filter(open).collect(),
        None => {
            let mut last: Vec<usize> = (0..items.len())
                .rev()
                .filter(open)
                .take(status.unprocess_count as usize)
                .collect();
            last.reverse();
            last
        }
    };
    let tied = (refused.len() + stopped_at.len()) as u64;
    let counted = status.success_count + status.error_count + status.unprocess_count;
    let unsure = untied
        || tied < status.error_count
        || counted != items.len() as u64
        || unprocessed.len() as u64 != status.unprocess_count;
    if !unsure {
        out.unprocessed = unprocessed.iter().map(|&i| items[i].id).collect();
    }
    out.unprocessed_reason = match &fatal {
        Some(r) => format!("batch job {tc_batch_id} stopped before this item: {r}"),
        None => format!("batch job {tc_batch_id} did not process this item"),
    };
    out.uncertain = (0..items.len())
        .filter(|i| !refused.contains(i) && (unsure || stopped_at.contains(i)))
        .map(|i| items[i].id)
        .collect();
    out.uncertain_reason = match &fatal {
        Some(r) => format!(
            "batch job {tc_batch_id} may or may not have processed this item ({r}): \
             it goes per indicator"
        ),
        None => format!(
            "batch job {tc_batch_id} may or may not have processed this item (its errors \
             and counts do not say): it goes per indicator"
        ),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<BatchCandidate> {
        (0..n)
            .map(|i| BatchCandidate {
                id: 100 + i as i64,
                kind: "Host".into(),
                value: format!("h{i}.com"),
                payload: "{}".into(),
            })
            .collect()
    }

    fn status(items: u64, errors: u64, unprocessed: u64) -> wire::Status {
        wire::Status {
            status: "Completed".into(),
            error_count: errors,
            success_count: items.saturating_sub(errors + unprocessed),
            unprocess_count: unprocessed,
        }
    }

    fn error(item: Option<usize>, summary: Option<&str>, reason: &str) -> ItemError {
        ItemError {
            item,
            summary: summary.map(String::from),
            reason: reason.into(),
            fatal: reason.contains("unexpected Exception"),
        }
    }

    #[test]
    fn refused_items_are_tied_to_their_jobs_by_path_or_summary() {
        let errs = [
            error(Some(2), None, "bad"),
            error(None, Some("h4.com"), "excluded"),
        ];
        let out = map_results(&items(6), &errs, &status(6, 2, 0), 9);
        assert_eq!(
            out.refused,
            vec![(102, "bad".into()), (104, "excluded".into())]
        );
        assert!(out.unprocessed.is_empty() && out.uncertain.is_empty());
    }

    #[test]
    fn unprocessed_items_are_the_last_ones_and_untied_errors_make_the_rest_uncertain() {
        // A job-level error buries nothing; the item it stopped at is not
        // known to be created: it goes back as of unknown outcome; the items
        // after it were not processed.
        let fatal = "Encountered an unexpected Exception while processing batch job";
        let errs = [error(Some(1), None, fatal)];
        let out = map_results(&items(5), &errs, &status(5, 1, 3), 9);
        assert!(out.refused.is_empty());
        assert_eq!(out.unprocessed, vec![102, 103, 104]);
        assert_eq!(out.uncertain, vec![101]);
        assert!(out.unprocessed_reason.contains(fatal));
        // Counted another way (the stopped item among the unprocessed):
        // which were processed is a guess, so none is counted either way.
        let counted_twice = wire::Status {
            success_count: 1,
            ..status(5, 1, 4)
        };
        let out = map_results(&items(5), &errs, &counted_twice, 9);
        assert!(out.unprocessed.is_empty());
        assert_eq!(out.uncertain, vec![100, 101, 102, 103, 104]);
        // Without a job-level error, the last ones are the unprocessed.
        let errs = [error(Some(0), None, "bad")];
        let out = map_results(&items(5), &errs, &status(5, 1, 2), 9);
        assert_eq!(out.unprocessed, vec![103, 104]);
        assert!(out.uncertain.is_empty());
        // One naming no item: any of the items may be it.
        let errs = [error(None, None, fatal)];
        let out = map_results(&items(5), &errs, &status(5, 1, 2), 9);
        assert!(out.unprocessed.is_empty());
        assert_eq!(out.uncertain, vec![100, 101, 102, 103, 104]);
        // An error tied to nothing.
        let errs = [error(None, Some("nowhere"), "what")];
        let out = map_results(&items(3), &errs, &status(3, 1, 0), 9);
        assert_eq!(out.uncertain, vec![100, 101, 102]);
        // Fewer items tied than errorCount (two entries for one item do not
        // make two): the untold one could be any.
        for errs in [
            vec![error(Some(0), None, "bad")],
            vec![error(Some(0), None, "bad"), error(Some(0), None, "bad tag")],
        ] {
            let out = map_results(&items(3), &errs, &status(3, 2, 0), 9);
            assert_eq!(out.refused, vec![(100, "bad".into())]);
            assert_eq!(out.uncertain, vec![101, 102]);
        }
        // Counts that leave an item unaccounted for: the rest is uncertain.
        let short = wire::Status {
            success_count: 1,
            ..status(3, 0, 0)
        };
        let out = map_results(&items(3), &[], &short, 9);
        assert_eq!(out.uncertain, vec![100, 101, 102]);
    }
}
