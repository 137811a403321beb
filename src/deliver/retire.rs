//! Retire jobs (tc-api.md section 9): deactivate with a v3 PUT of
//! `{"active": false}`, delete with a v3 DELETE, or add the retire tag
//! with v2, each by the indicator's summary and owner (a File by each of
//! its hashes in turn). A 404 by summary looks the id up; a 404 by id, or
//! no id found, means nothing is left to retire: the job is done.

use std::ops::ControlFlow;

use tokio_util::sync::CancellationToken;

use super::policy::{Action, policy};
use super::worker::{Answer, Call, release};
use super::writer::Results;
use super::{Api, Delivery};
use crate::api::{ApiRequest, Outcome, V3Target};
use crate::indicator::{Indicator, Payload};
use crate::names::{ErrorClass, JobAction};
use crate::queue::{Job, JobError, JobUpdate};

impl Delivery {
    /// Sends a retire job's call until it is done, to be tried again, or
    /// buried; `None` when its lease was lost.
    pub(super) async fn retire(
        &self,
        job: &Job,
        indicator: &Indicator,
        payload: &Payload,
        results: &Results,
        cancel: &CancellationToken,
    ) -> Option<JobUpdate> {
        let cfg = self.config();
        let mut call = Call {
            step: 0,
            total: 1,
            attempts: job.attempts,
            uncertain: job.uncertain.call_may_have_arrived(),
            clock_corrected: false,
            v3: true,
            recheck: false,
            identifier: 0,
            identifiers: indicator.path_identifiers().len(),
            labels_dropped: 0,
        };
        let mut target = V3Target::Summary;
        loop {
            if cancel.is_cancelled() || self.gate.paused().is_some() {
                return Some(release(&call));
            }
            let api = self.api.borrow().clone();
            let named = indicator
                .named_by(call.identifier)
                .unwrap_or_else(|| indicator.clone());
            let Some(req) = retire_request(&api, job, &named, payload, target) else {
                return Some(JobUpdate::Bury {
                    error: JobError {
                        class: ErrorClass::InvalidJob,
                        http_status: None,
                        message: "a tag retire job without its tag in the payload".into(),
                    },
                });
            };
            let Some((mut outcome, mut status)) = self.send_request(&api, job, &req).await else {
                return Some(release(&call));
            };
            if policy(&outcome, call.clock_corrected) == Action::NotFound {
                // A File may be held under another of its hashes.
                if target == V3Target::Summary && call.identifier + 1 < call.identifiers {
                    call.identifier += 1;
                    continue;
                }
                if target != V3Target::Summary || job.action == JobAction::Tag {
                    return Some(nothing_left(job));
                }
                match self.look_up(&api, job, indicator).await {
                    None => return Some(release(&call)),
                    Some(Ok(Some(id))) => {
                        target = V3Target::Id(id);
                        continue;
                    }
                    Some(Ok(None)) => return Some(nothing_left(job)),
                    Some(Err(failed)) => (outcome, status) = (failed, None),
                }
            }
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
            if call.step >= call.total {
                tracing::debug!(job = job.lease.id, action = %job.action, owner = %job.owner, value = %job.value, "indicator retired");
                return Some(JobUpdate::Delivered);
            }
        }
    }

    /// The id of an indicator its summary did not find: among active
    /// indicators, and for a delete among inactive ones too. `None` when
    /// delivery was paused meanwhile; `Err` for a failed call.
    async fn look_up(
        &self,
        api: &Api,
        job: &Job,
        indicator: &Indicator,
    ) -> Option<Result<Option<i64>, Outcome>> {
        let mut places = vec![false];
        if job.action == JobAction::Delete {
            places.push(true);
        }
        for inactive in places {
            let req = api.endpoints.lookup(indicator, &job.owner, inactive);
            self.throttle.wait().await;
            if self.gate.paused().is_some() {
                return None;
            }
            match api.client.lookup_id(&req).await {
                Ok(Some(id)) => return Some(Ok(Some(id))),
                Ok(None) => {}
                Err(outcome) => return Some(Err(outcome)),
            }
        }
        Some(Ok(None))
    }
}

/// The indicator is not there to retire: done.
fn nothing_left(job: &Job) -> JobUpdate {
    tracing::debug!(job = job.lease.id, action = %job.action, owner = %job.owner, value = %job.value, "not found: nothing left to retire");
    JobUpdate::Delivered
}

/// The retire job's call, naming the indicator by `target`.
fn retire_request(
    api: &Api,
    job: &Job,
    indicator: &Indicator,
    payload: &Payload,
    target: V3Target,
) -> Option<ApiRequest> {
    let e = &api.endpoints;
    Some(match job.action {
        JobAction::Deactivate => e.set_active(indicator, &job.owner, target, false),
        JobAction::Delete => e.delete(indicator, &job.owner, target),
        JobAction::Tag => e.tag(indicator, payload.tags.first()?, &job.owner),
        JobAction::Create => return None,
    })
}
