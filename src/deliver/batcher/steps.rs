//! Driving one batch job through its durable steps: create, upload (or,
//! after a crash, check whether the upload arrived), poll, results. Every
//! call goes through the rate limiter and the breaker, and its answer
//! through the one policy.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::failure::{Abandon, Failed, Returned};
use super::results::map_results;
use super::{Batcher, item_bytes};
use crate::api::batch::{self as wire, ItemError};
use crate::api::{ApiRequest, Response};
use crate::config::Config;
use crate::deliver::policy::{Action, policy};
use crate::metrics::{BatchItemEnd, BatchJobEnd};
use crate::names::ErrorClass;
use crate::queue::{BatchJob, BatchState, now_ms};

/// A step's end: done (the next step follows), or failed.
type Step = anyhow::Result<Result<(), Failed>>;

/// A batch call's answer and what the policy makes of it.
struct Answer {
    resp: Response,
    action: Action,
}

impl Answer {
    /// A 2xx: the only answer a batch step goes on from (an "already
    /// exists", which the policy also lets a job go on from, is no batch
    /// job's answer: it goes to [`Batcher::failed`], which retries).
    fn succeeded(&self) -> bool {
        self.resp.outcome.class() == ErrorClass::Success
    }
}

impl Batcher {
    /// Takes a batch job through its remaining steps.
    pub(super) async fn drive(
        &self,
        mut b: BatchJob,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut poll_wait = self.d.config().batch.poll_min;
        // Consecutive failed calls of this batch job.
        let mut failures = 0u32;
        loop {
            self.d.gate.wait_running(stop).await;
            if stop.is_cancelled() {
                return Ok(());
            }
            let cfg = self.d.config();
            let step = match (b.state, b.tc_batch_id) {
                (BatchState::Done | BatchState::Failed, _) => return Ok(()),
                (BatchState::New, _) | (_, None) => self.create(&mut b, &cfg, failures + 1).await?,
                (BatchState::Created, Some(id)) => self.upload(&mut b, id).await?,
                (BatchState::Uploading, Some(id)) => self.check_upload(&mut b, id).await?,
                (BatchState::Uploaded, Some(id)) => match self.timed_out(&b, &cfg) {
                    Some(f) => Err(f),
                    None => {
                        tokio::select! {
                            _ = stop.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(poll_wait) => {}
                        }
                        poll_wait = poll_wait.mul_f64(1.5).min(cfg.batch.poll_max);
                        self.poll(&mut b, id).await?
                    }
                },
            };
            match step {
                Ok(()) => {
                    failures = 0;
                    self.clock_corrected.store(false, Ordering::Relaxed);
                }
                Err(Failed::Retry(wait)) => {
                    failures += 1;
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Err(Failed::Abandon(a)) => {
                    self.give_up(&b, a).await?;
                    b.state = BatchState::Failed;
                }
            }
        }
    }

    /// Gives the batch job up: its jobs go back to pending as `a` says.
    async fn give_up(&self, b: &BatchJob, a: Abandon) -> anyhow::Result<()> {
        let uncertain = a.returned.uncertainty();
        let n = self
            .d
            .queue
            .abandon_batch(b.id, &a.error, uncertain, a.class, now_ms())
            .await?;
        self.d.metrics.batch_job(BatchJobEnd::Failed);
        self.d.metrics.batch_items(BatchItemEnd::Returned, n);
        let returned = a.returned;
        tracing::warn!(batch = b.id, tc_batch_id = b.tc_batch_id, jobs = n, ?returned, error = %a.error, "batch job given up: its jobs are pending again");
        Ok(())
    }

    /// `POST /v2/batch`: ThreatConnect's job, its id stored.
    /// `attempt`: tries of this call so far, this one included.
    async fn create(&self, b: &mut BatchJob, cfg: &Config, attempt: u32) -> Step {
        let answer = self
            .call(&b.owner, &wire::create(&b.owner, &cfg.batch))
            .await;
        if !answer.succeeded() {
            return Ok(Err(self.failed_call(b, answer, attempt).await));
        }
        match wire::created_id(&answer.resp.body) {
            Ok(id) => {
                self.d.queue.batch_created(b.id, id).await?;
                b.state = BatchState::Created;
                b.tc_batch_id = Some(id);
                tracing::debug!(batch = b.id, tc_batch_id = id, "batch job created");
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(self.unreadable(b, &e))),
        }
    }

    /// `POST /v2/batch/<id>`, recorded as tried before it is sent.
    async fn upload(&self, b: &mut BatchJob, id: i64) -> Step {
        let items = self.d.queue.batch_items(b.id).await?;
        if items.is_empty() {
            // Nothing left in it (its jobs were requeued by hand).
            let error = "no jobs left in the batch job".to_string();
            return Ok(Err(Failed::abandon(error, Returned::Unsent, None)));
        }
        let endpoints = self.d.api.borrow().endpoints.clone();
        let data: Vec<Vec<u8>> = items
            .iter()
            .map(|c| item_bytes(&endpoints, &self.d.labels, c).unwrap_or_else(|_| b"{}".to_vec()))
            .collect();
        let data = bytes::Bytes::from(wire::data_file(&data));
        self.d.queue.batch_uploading(b.id).await?;
        b.state = BatchState::Uploading;
        b.upload_attempts += 1;
        let answer = self.call(&b.owner, &wire::upload(id, data)).await;
        if !answer.succeeded() {
            return Ok(Err(self.failed_call(b, answer, b.upload_attempts).await));
        }
        self.d.queue.batch_uploaded(b.id).await?;
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
    async fn check_upload(&self, b: &mut BatchJob, id: i64) -> Step {
        let answer = self.call(&b.owner, &wire::status(id)).await;
        if !answer.succeeded() {
            return Ok(Err(self.failed_call(b, answer, b.upload_attempts).await));
        }
        let max_attempts = self.d.config().delivery.max_attempts;
        match wire::parse_status(&answer.resp.body) {
            Ok(s) if s.awaits_data() && b.upload_attempts >= max_attempts => {
                let error = format!(
                    "the data of batch job {id} did not arrive after {} uploads",
                    b.upload_attempts
                );
                let class = Some(ErrorClass::BatchFailed);
                Ok(Err(Failed::abandon(error, Returned::Unsent, class)))
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
                self.d.queue.batch_uploaded(b.id).await?;
                b.state = BatchState::Uploaded;
                b.uploaded_at.get_or_insert(now_ms());
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(self.unreadable(b, &e))),
        }
    }

    /// `GET /v2/batch/<id>`; once `Completed`, its results applied.
    async fn poll(&self, b: &mut BatchJob, id: i64) -> Step {
        let answer = self.call(&b.owner, &wire::status(id)).await;
        if !answer.succeeded() {
            return Ok(Err(self.failed_call(b, answer, 1).await));
        }
        let status = match wire::parse_status(&answer.resp.body) {
            Ok(s) => s,
            Err(e) => return Ok(Err(self.unreadable(b, &e))),
        };
        self.d.queue.batch_polled(b.id, &status.status).await?;
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
        let items = self.d.queue.batch_items(b.id).await?;
        for label in errors
            .iter()
            .filter_map(|e| crate::api::outcome::unknown_security_label(&e.reason))
        {
            self.d.labels.refused(&label);
        }
        let mut outcome = map_results(&items, &errors, &status, id);
        outcome.retry_in_ms = self.d.config().batch.poll_max.as_millis() as i64;
        self.d.queue.finish_batch(b.id, &outcome).await?;
        let returned = (outcome.unprocessed.len() + outcome.uncertain.len()) as u64;
        let refused = outcome.refused.len() as u64;
        let delivered = items.len() as u64 - refused - returned;
        let m = &self.d.metrics;
        m.batch_job(BatchJobEnd::Done);
        m.batch_items(BatchItemEnd::Delivered, delivered);
        m.batch_items(BatchItemEnd::Refused, refused);
        m.batch_items(BatchItemEnd::Returned, returned);
        tracing::info!(
            batch = b.id,
            tc_batch_id = id,
            delivered,
            refused,
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
        let answer = self.call(owner, &wire::results(id)).await;
        let parsed = match answer.action {
            _ if answer.succeeded() => wire::parse_results(&answer.resp.body),
            Action::NotFound => {
                let answer = self.call(owner, &wire::errors(id)).await;
                match answer.action {
                    _ if answer.succeeded() => wire::parse_errors(&answer.resp.body),
                    Action::NotFound => {
                        tracing::warn!(
                            tc_batch_id = id,
                            "the batch job reports errors but lists none: its items go per indicator"
                        );
                        Ok(Vec::new())
                    }
                    _ => Err(answer.resp.outcome.message()),
                }
            }
            _ => Err(answer.resp.outcome.message()),
        };
        parsed.map_err(|e| {
            tracing::warn!(tc_batch_id = id, error = %e, "cannot read the batch job's errors yet");
            Failed::Retry(self.d.config().batch.poll_max)
        })
    }

    /// A job not completed within `batch.timeout` of its upload.
    fn timed_out(&self, b: &BatchJob, cfg: &Config) -> Option<Failed> {
        let since = b.uploaded_at.unwrap_or(b.created_at);
        let age = Duration::from_millis((now_ms() - since).max(0) as u64);
        (age > cfg.batch.timeout).then(|| {
            let error = format!(
                "batch job {} not completed after {} (last status {}): its jobs go per indicator",
                b.tc_batch_id.unwrap_or(0),
                humantime::format_duration(cfg.batch.timeout),
                b.tc_status.as_deref().unwrap_or("unknown")
            );
            let class = Some(ErrorClass::BatchFailed);
            Failed::abandon(error, Returned::MaybeProcessed, class)
        })
    }

    /// Sends a batch call through the rate limiter; its answer counts
    /// towards the circuit breaker like any job's.
    async fn call(&self, owner: &str, req: &ApiRequest) -> Answer {
        self.d.throttle.wait().await;
        let api = self.d.api.borrow().clone();
        let started = Instant::now();
        let resp = api.client.send(req).await;
        let action = policy(&resp.outcome, self.clock_corrected.load(Ordering::Relaxed));
        self.d
            .breaker_sees(&self.d.config().delivery, &action, &resp.outcome)
            .await;
        // Counted under the type `batch`: a batch call is not of one type.
        self.d
            .metrics
            .request(owner, "batch", resp.outcome.class(), started.elapsed());
        tracing::debug!(path = %req.path_and_query, class = %resp.outcome.class(), status = resp.status, "batch request");
        Answer { resp, action }
    }

    /// [`Batcher::failed`] of a call's answer.
    async fn failed_call(&self, b: &BatchJob, answer: Answer, attempts: u32) -> Failed {
        self.failed(b, &answer.resp.outcome, answer.action, attempts)
            .await
    }
}
