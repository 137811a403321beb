//! The dispatcher claims due jobs (leased, fenced) for the workers; a
//! worker sends one job's calls in order, each only after the previous
//! one's success is committed, and hands back what became of the job.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::batcher::Batcher;
use super::policy::{Action, backoff, policy};
use super::writer::{Leases, Results};
use super::{Api, Delivery};
use crate::api::{ApiRequest, Outcome, attribute_of_step};
use crate::config::{AttributeCheck, DeliveryConfig, PerIndicator};
use crate::indicator::{Attribute, Indicator, Payload};
use crate::names::ErrorClass;
use crate::queue::{Job, JobError, JobUpdate, now_ms};

/// Claims per dispatcher round, at most.
const CLAIM_BATCH: usize = 256;
/// How often an idle dispatcher looks for jobs queued by another process.
const POLL: Duration = Duration::from_millis(250);

/// One answer to a call: what it was, and what the policy makes of it.
pub(super) struct Answer {
    pub(super) outcome: Outcome,
    pub(super) status: Option<u16>,
    pub(super) action: Action,
}

impl Answer {
    /// The error recorded on the job.
    fn error(&self) -> JobError {
        JobError {
            class: self.outcome.class(),
            http_status: self.status,
            message: self.outcome.message(),
        }
    }

    /// Try the call again at `at`; `failed` counts an attempt.
    fn retry(&self, call: &Call, at: i64, failed: bool) -> ControlFlow<Option<JobUpdate>> {
        ControlFlow::Break(Some(JobUpdate::Retry {
            at,
            failed,
            uncertain: call.uncertain,
            error: Some(self.error()),
        }))
    }
}

/// Where a job's current call stands.
#[derive(Clone, Copy)]
pub(super) struct Call {
    pub(super) step: u32,
    /// The job's calls in all.
    pub(super) total: u32,
    /// Consecutive failures of this call.
    pub(super) attempts: u32,
    /// It may have reached the server unrecorded: an attribute is checked
    /// before it is sent again.
    pub(super) uncertain: bool,
    pub(super) clock_corrected: bool,
    /// One v3 create carries every call left (tc-api.md section 7).
    pub(super) v3: bool,
    /// Every attribute is looked for before it is sent (the job was in a
    /// batch job that may have been processed, or `delivery.attribute_check
    /// = "always"`).
    pub(super) recheck: bool,
    /// Which of the indicator's path identifiers names it in the calls after
    /// the create ([`Indicator::named_by`]), and how many it has: a File
    /// not found under one hash is tried under the next.
    pub(super) identifier: usize,
    pub(super) identifiers: usize,
    /// Times this job was sent again without a label the API refused.
    pub(super) labels_dropped: u8,
}

/// A job is sent again without a refused label at most this many times
/// (each time one label fewer): past it, the refusal buries it.
const MAX_LABELS_DROPPED: u8 = 8;

impl Delivery {
    /// Claims due jobs while delivery runs, until `stop`.
    pub(super) async fn dispatcher(
        &self,
        job_tx: mpsc::Sender<Job>,
        leases: &Leases,
        batcher: &Batcher,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            self.gate.wait_running(stop).await;
            if stop.is_cancelled() {
                return Ok(());
            }
            self.clear_recorded_pause().await?;
            // Claim in batches, once half the channel is free: each claim is
            // a write that the writer's group commits wait behind.
            let batch = (job_tx.max_capacity() / 2).clamp(1, CLAIM_BATCH);
            let permits = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                p = job_tx.reserve_many(batch) => match p {
                    Ok(p) => p,
                    Err(_) => return Ok(()),
                },
            };
            batcher.refresh().await?;
            let batching = self.routes.batching_owners(self.config().delivery.mode);
            let jobs = self
                .queue
                .claim(batch, self.config().queue.lease, &batching)
                .await?;
            if jobs.is_empty() {
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = self.work_added.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
                continue;
            }
            for (job, permit) in jobs.into_iter().zip(permits) {
                leases.hold(job.lease);
                permit.send(job);
            }
        }
    }

    /// Takes jobs until the channel closes. After `soft` (shutdown) a job
    /// starts no new call and is released; after `hard` (the grace time is
    /// over) the call in flight is dropped and the job released with its
    /// call marked uncertain.
    pub(super) async fn worker(
        &self,
        rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
        results: Results,
        soft: CancellationToken,
        hard: CancellationToken,
    ) {
        loop {
            let job = { rx.lock().await.recv().await };
            let Some(job) = job else { return };
            let update = tokio::select! {
                u = self.deliver(&job, &results, &soft) => u,
                _ = hard.cancelled() => Some(JobUpdate::Retry {
                    at: now_ms(),
                    failed: false,
                    uncertain: true,
                    error: None,
                }),
            };
            let Some(update) = update else { continue };
            if results.commit(job.lease, update).await.is_none() {
                return; // the writer is gone: the daemon is stopping
            }
        }
    }

    /// Sends one job's remaining calls and says what became of it; `None`
    /// when its lease was lost (another claim owns it now).
    pub(super) async fn deliver(
        &self,
        job: &Job,
        results: &Results,
        cancel: &CancellationToken,
    ) -> Option<JobUpdate> {
        let (indicator, payload) = match job.parse() {
            Ok(p) => p,
            Err(message) => {
                return Some(JobUpdate::Bury {
                    error: JobError {
                        class: ErrorClass::InvalidJob,
                        http_status: None,
                        message,
                    },
                });
            }
        };
        if self.held.lock().expect("held").contains(&job.owner) {
            return Some(JobUpdate::Hold {
                error: JobError {
                    class: ErrorClass::Held,
                    http_status: None,
                    message: "owner held: waiting for access".into(),
                },
            });
        }
        if job.action.retires() {
            return self
                .retire(job, &indicator, &payload, results, cancel)
                .await;
        }
        if !payload.security_labels.is_empty() {
            self.read_labels().await;
        }
        // Read once per job: a reload applies from the next job on.
        let cfg = self.config();
        let mut call = Call {
            step: job.steps_done,
            total: payload.steps() as u32,
            attempts: job.attempts,
            uncertain: job.uncertain.call_may_have_arrived(),
            clock_corrected: false,
            v3: cfg.per_indicator() == PerIndicator::V3,
            recheck: job.uncertain.recheck_attributes()
                || cfg.delivery.attribute_check == AttributeCheck::Always,
            identifier: 0,
            identifiers: indicator.path_identifiers().len(),
            labels_dropped: 0,
        };
        while call.step < call.total {
            if cancel.is_cancelled() || self.gate.paused().is_some() {
                return Some(release(&call));
            }
            let api = self.api.borrow().clone();
            let Some((outcome, status)) = self
                .send_call(&api, job, &indicator, &payload, &mut call)
                .await
            else {
                return Some(release(&call));
            };
            let action = policy(&outcome, call.clock_corrected);
            self.breaker_sees(&cfg.delivery, &action, &outcome).await;
            let answer = Answer {
                outcome,
                status,
                action,
            };
            if let ControlFlow::Break(end) = self
                .act(job, results, &api, &cfg.delivery, &mut call, answer)
                .await
            {
                return end;
            }
        }
        Some(JobUpdate::Delivered)
    }

    /// Acts on one answer: go on with the job (`Continue`), or end it with
    /// the update to record (`Break(None)`: the lease was lost). One arm per
    /// [`Action`].
    pub(super) async fn act(
        &self,
        job: &Job,
        results: &Results,
        api: &Api,
        d: &DeliveryConfig,
        call: &mut Call,
        answer: Answer,
    ) -> ControlFlow<Option<JobUpdate>> {
        let (outcome, error) = (&answer.outcome, || answer.error());
        let retry = |call: &Call, at: i64, failed: bool| answer.retry(call, at, failed);
        match answer.action.clone() {
            Action::NextStep => self.advance(job, results, call).await,
            Action::CorrectClockAndRetry { server_date } => {
                let offset = api.client.clock().correct_to(server_date);
                tracing::warn!(
                    offset_secs = offset,
                    "server says our clock is off: correcting the signing timestamp"
                );
                call.clock_corrected = true;
                ControlFlow::Continue(())
            }
            Action::PauseAll { class, reason } => {
                self.pause(class, reason).await;
                retry(call, now_ms(), false)
            }
            // A File that ThreatConnect had under another of its hashes
            // ("a File with this MD5 already exists") is not found under the
            // one tried: the next is tried.
            Action::NotFound
                if call.step > 0 && !call.v3 && call.identifier + 1 < call.identifiers =>
            {
                call.identifier += 1;
                tracing::info!(
                    job = job.lease.id,
                    "not found under this hash: trying the File's next hash"
                );
                ControlFlow::Continue(())
            }
            // A label the instance lacks: sent again at once without it
            // (the refusal names one of the job's labels: else the job is
            // refused, rather than sent again unchanged).
            Action::DropLabel { label } if call.labels_dropped < MAX_LABELS_DROPPED => {
                match job_label_named(job, &label) {
                    Some(label) => {
                        call.labels_dropped += 1;
                        self.labels.refused(&label);
                        ControlFlow::Continue(())
                    }
                    None => ControlFlow::Break(Some(JobUpdate::Bury { error: error() })),
                }
            }
            // v2's label call names the label in its path: 404 there, for
            // a label the instance's list does not show, is the label
            // missing (the indicator was created by step 0).
            Action::NotFound
                if !call.v3
                    && call.identifier + 1 >= call.identifiers
                    && let Some(label) = label_of_step(job, call)
                    && !self.labels.listed(&label) =>
            {
                self.labels.refused(&label);
                self.advance(job, results, call).await
            }
            Action::HoldOwner => {
                self.hold(&job.owner, outcome).await;
                ControlFlow::Break(Some(JobUpdate::Hold { error: error() }))
            }
            Action::Bury | Action::NotFound | Action::DropLabel { .. } => {
                tracing::debug!(job = job.lease.id, owner = %job.owner, value = %job.value, class = %outcome.class(), api_message = %outcome.message(), "job buried");
                ControlFlow::Break(Some(JobUpdate::Bury { error: error() }))
            }
            Action::RateLimited { retry_after } => {
                self.throttle.slow_down();
                let wait = retry_after.unwrap_or(Duration::from_secs(5));
                retry(call, now_ms() + wait.as_millis() as i64, false)
            }
            // The batch API's own answers do not come to a per-indicator
            // call; were one to come, it is a failure of the call like any.
            Action::Backoff { outcome_unknown } => {
                Self::failed_call(job, d, call, &answer, outcome_unknown)
            }
            Action::FallBackFromBatch | Action::SplitBatch { .. } => {
                Self::failed_call(job, d, call, &answer, false)
            }
        }
    }

    /// A failed call: retried with backoff, buried after
    /// `delivery.max_attempts` failures of it in a row.
    fn failed_call(
        job: &Job,
        d: &DeliveryConfig,
        call: &mut Call,
        answer: &Answer,
        outcome_unknown: bool,
    ) -> ControlFlow<Option<JobUpdate>> {
        call.attempts += 1;
        call.uncertain |= outcome_unknown;
        if call.attempts >= d.max_attempts {
            let outcome = &answer.outcome;
            tracing::debug!(job = job.lease.id, attempts = call.attempts, class = %outcome.class(), api_message = %outcome.message(), "job buried after the maximum attempts of one call");
            return ControlFlow::Break(Some(JobUpdate::Bury {
                error: answer.error(),
            }));
        }
        let delay = backoff(call.attempts, d.backoff_base, d.backoff_max);
        answer.retry(call, now_ms() + delay.as_millis() as i64, true)
    }

    /// The call succeeded: go on to the next, once its success is
    /// committed (`Break(None)`: the lease was lost).
    async fn advance(
        &self,
        job: &Job,
        results: &Results,
        call: &mut Call,
    ) -> ControlFlow<Option<JobUpdate>> {
        *call = Call {
            step: if call.v3 { call.total } else { call.step + 1 },
            attempts: 0,
            uncertain: false,
            clock_corrected: false,
            ..*call
        };
        if call.step < call.total {
            let update = JobUpdate::Progress {
                steps_done: call.step,
            };
            match results.commit(job.lease, update).await {
                Some(true) => {}
                Some(false) => {
                    tracing::warn!(
                        job = job.lease.id,
                        "lease lost: another worker has this job now; stopping"
                    );
                    return ControlFlow::Break(None);
                }
                None => return ControlFlow::Break(None),
            }
        }
        ControlFlow::Continue(())
    }

    /// Sends the job's current call, through the rate limiter: the v2 call
    /// of its step, or the one v3 create of everything left. An attribute
    /// that may already have reached the server is first looked for with a
    /// GET of the indicator's attributes, and not sent again if it is there.
    /// `None` when delivery was paused meanwhile.
    async fn send_call(
        &self,
        api: &Api,
        job: &Job,
        indicator: &Indicator,
        payload: &Payload,
        call: &mut Call,
    ) -> Option<(Outcome, Option<u16>)> {
        let step = call.step as usize;
        let req = if call.v3 {
            // Attributes added by earlier v2 calls of this job are not sent again.
            let done = step
                .saturating_sub(1 + payload.tags.len())
                .min(payload.attributes.len());
            let mut attributes: Vec<&Attribute> = payload.attributes[done..].iter().collect();
            if (call.uncertain || call.recheck) && !attributes.is_empty() {
                // Under each of its identifiers (a File may be held under
                // another hash); not found under any: not created yet, so
                // none of them is there.
                for i in 0..call.identifiers {
                    let Some(named) = indicator.named_by(i) else {
                        break;
                    };
                    match self.attributes_present(api, job, &named).await {
                        Ok(present) => {
                            attributes.retain(|a| !present.contains(a));
                            break;
                        }
                        Err(outcome) if policy(&outcome, false) == Action::NotFound => {}
                        Err(outcome) => return Some((outcome, None)),
                    }
                }
                call.uncertain = false;
            }
            let labels = self.labels.sendable(&payload.security_labels);
            api.endpoints
                .v3_create(indicator, payload, &job.owner, &attributes, &labels)
        } else {
            // After the create, as the identifier in use names it.
            let named;
            let indicator = if step > 0 && call.identifier > 0 {
                named = indicator
                    .named_by(call.identifier)
                    .unwrap_or_else(|| indicator.clone());
                &named
            } else {
                indicator
            };
            // A label the instance lacks is not sent: the step is done.
            if let Some(label) = payload.label_of_step(step)
                && !self.labels.allows(label)
            {
                return Some((Outcome::success(), None));
            }
            if (call.uncertain || call.recheck)
                && let Some(attr) = attribute_of_step(payload, step)
            {
                match self.attributes_present(api, job, indicator).await {
                    Ok(present) => {
                        call.uncertain = false;
                        if present.contains(attr) {
                            tracing::info!(job = job.lease.id, attribute = %attr.kind, "attribute already added by an earlier attempt: not sent again");
                            return Some((Outcome::success(), None));
                        }
                    }
                    Err(outcome) => return Some((outcome, None)),
                }
            }
            api.endpoints
                .step(indicator, payload, &job.owner, step)
                .expect("a step below the total has a request")
        };
        self.send_request(api, job, &req).await
    }

    /// Sends one request of a job through the rate limiter, counted in the
    /// metrics. `None` when delivery was paused meanwhile.
    pub(super) async fn send_request(
        &self,
        api: &Api,
        job: &Job,
        req: &ApiRequest,
    ) -> Option<(Outcome, Option<u16>)> {
        self.throttle.wait().await;
        if self.gate.paused().is_some() {
            return None;
        }
        let started = Instant::now();
        let resp = api.client.send(req).await;
        self.metrics.request(
            &job.owner,
            &job.kind,
            resp.outcome.class(),
            started.elapsed(),
        );
        tracing::debug!(job = job.lease.id, method = req.method.as_str(), path = %req.path_and_query, class = %resp.outcome.class(), status = resp.status, "request");
        Some((resp.outcome, resp.status))
    }

    /// The attributes the indicator has, through the rate limiter.
    async fn attributes_present(
        &self,
        api: &Api,
        job: &Job,
        indicator: &Indicator,
    ) -> Result<Vec<Attribute>, Outcome> {
        self.throttle.wait().await;
        let started = Instant::now();
        let found = api
            .client
            .attributes(&api.endpoints.attributes(indicator, &job.owner))
            .await;
        let class = found
            .as_ref()
            .err()
            .map_or(ErrorClass::Success, Outcome::class);
        self.metrics
            .request(&job.owner, &job.kind, class, started.elapsed());
        found
    }

    /// Feeds the circuit breaker; opens the circuit when it trips.
    pub(super) async fn breaker_sees(
        &self,
        d: &DeliveryConfig,
        action: &Action,
        outcome: &Outcome,
    ) {
        let trip = self.breaker.lock().expect("breaker").record(
            action,
            d.backoff_base,
            d.circuit_open_max,
        );
        let Some(open) = trip else { return };
        let reason = format!(
            "circuit open: most recent requests failed ({}); no requests for {:.1}s, then probes",
            outcome.message(),
            open.as_secs_f32()
        );
        if self.gate.pause(
            ErrorClass::CircuitOpen,
            reason.clone(),
            Some(Instant::now() + open),
        ) {
            tracing::warn!(open_secs = open.as_secs_f32(), last = %outcome.message(), "circuit breaker open: most recent requests failed");
            self.record_pause(ErrorClass::CircuitOpen, reason).await;
        }
    }

    /// Holds an owner: its jobs wait, other owners go on.
    pub(super) async fn hold(&self, owner: &str, outcome: &Outcome) {
        self.held.lock().expect("held").insert(owner.to_string());
        match self
            .queue
            .hold_owner(owner, outcome.class(), &outcome.message())
            .await
        {
            Ok(true) => {
                tracing::warn!(owner, class = %outcome.class(), api_message = %outcome.message(), advice = outcome.advice().unwrap_or(""), "owner held: its jobs wait, other owners go on");
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
}

/// The security label the job's current v2 call adds, if it is a label call.
fn label_of_step(job: &Job, call: &Call) -> Option<String> {
    let (_, payload) = job.parse().ok()?;
    payload
        .label_of_step(call.step as usize)
        .map(str::to_string)
}

/// The job's label that a refusal names (its quotes and case aside: the
/// refusal's text is not documented).
fn job_label_named(job: &Job, named: &str) -> Option<String> {
    let (_, payload) = job.parse().ok()?;
    let named = named.trim().trim_matches(['\'', '"']);
    payload
        .security_labels
        .into_iter()
        .find(|l| l.eq_ignore_ascii_case(named))
}

/// Gives a job back unstarted (paused, or shutting down): no attempt counts.
pub(super) fn release(call: &Call) -> JobUpdate {
    JobUpdate::Retry {
        at: now_ms(),
        failed: false,
        uncertain: call.uncertain,
        error: None,
    }
}
