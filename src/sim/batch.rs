//! The batch API (tc-api.md section 5): create a job, upload its data, poll
//! its status, read its errors. Jobs are processed in upload order at
//! `batch_items_per_sec` (at once when 0) by [`run_processor`]; each item is
//! checked like a v2 create and refused items are reported with their JSON
//! path (`/results`) or, under `batch_legacy_errors`, only as gzip from
//! `/errors` with the item as `errorSource`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::check_owner;
use super::reply::{Ctx, Failure, Reply, fail, not_found};
use super::store::{NewIndicator, Store, Upsert};
use super::v2::{malformed, rating_and_confidence};
use super::{Shared, SimAttribute, validate};
use crate::indicator::IndicatorType;

const FATAL: &str = "Encountered an unexpected Exception while processing batch job";
/// The reason a `Delete` job gives for an item the owner does not have
/// (not documented; reported with code 0x1007, "item not found").
const NOT_FOUND: &str = "Item not found";

/// A batch job as the simulator holds it.
pub(super) struct Job {
    owner: String,
    /// `"action": "Delete"`: each item found in the owner is deleted.
    delete: bool,
    attribute_write_type: String,
    tag_write_type: String,
    security_label_write_type: String,
    status: &'static str,
    items: Vec<Value>,
    /// Items processed so far (in order).
    next: usize,
    success: u64,
    errors: Vec<ItemError>,
    unprocessed: u64,
    uploads: u32,
    upload_attempts: u32,
    /// Uploaded, then lost: its status answers 404 and it is never processed.
    lost: bool,
    /// Its place in the processing queue (upload order).
    queued_seq: u64,
}

struct ItemError {
    /// Position in the data file; `None` for a failure of the whole job.
    index: Option<usize>,
    reason: String,
    item: Value,
}

#[derive(Default)]
pub(super) struct Batches {
    next_id: i64,
    next_seq: u64,
    jobs: BTreeMap<i64, Job>,
}

/// A batch job as tests see it ([`super::Simulator::batches`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimBatch {
    pub id: i64,
    pub owner: String,
    pub status: String,
    /// Data uploads accepted.
    pub uploads: u32,
    /// Data uploads that reached the handler, refused ones included.
    pub upload_attempts: u32,
    /// The summaries of its items, in order.
    pub summaries: Vec<String>,
    pub errors: usize,
    pub lost: bool,
    /// As the job's config set them (ThreatConnect's default: `Replace`).
    pub tag_write_type: String,
    pub security_label_write_type: String,
}

impl Batches {
    pub(super) fn list(&self) -> Vec<SimBatch> {
        self.jobs
            .iter()
            .map(|(id, j)| SimBatch {
                id: *id,
                owner: j.owner.clone(),
                status: j.status.into(),
                uploads: j.uploads,
                upload_attempts: j.upload_attempts,
                summaries: j
                    .items
                    .iter()
                    .map(|i| i["summary"].as_str().unwrap_or("").to_string())
                    .collect(),
                errors: j.errors.len(),
                lost: j.lost,
                tag_write_type: j.tag_write_type.clone(),
                security_label_write_type: j.security_label_write_type.clone(),
            })
            .collect()
    }
}

/// Routes `/v2/batch/...` (`rest` is what follows `batch`).
pub(super) fn route(ctx: &Ctx<'_>, rest: &[&str]) -> Result<Reply, Failure> {
    match (&ctx.req.method, rest) {
        (&Method::POST, []) => create(ctx),
        (&Method::POST, [id]) => upload(ctx, parse_id(id)?),
        (&Method::GET, [id]) => status(ctx, parse_id(id)?),
        (&Method::GET, [id, "results"]) => results(ctx, parse_id(id)?),
        (&Method::GET, [id, "errors"]) => legacy_errors(ctx, parse_id(id)?),
        _ => Err(not_found()),
    }
}

fn parse_id(s: &str) -> Result<i64, Failure> {
    s.parse().map_err(|_| not_found())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobConfig {
    owner: Option<String>,
    action: Option<String>,
    attribute_write_type: Option<String>,
    #[serde(default)]
    tag_write_type: Option<String>,
    #[serde(default)]
    security_label_write_type: Option<String>,
}

/// `POST /v2/batch`: a job for the config's owner, state `Created`.
fn create(ctx: &Ctx<'_>) -> Result<Reply, Failure> {
    if ctx.faults.batch_unavailable {
        return Err(fail(
            503,
            "batch_unavailable",
            "Batch job api is not available. Ensure that batchJobEnabled is true and document storage is enabled on this instance.",
        ));
    }
    if ctx.faults.batch_access_denied {
        return Err(fail(403, "access_denied", "Access Denied"));
    }
    let cfg: JobConfig = serde_json::from_slice(&ctx.req.body).map_err(|_| malformed())?;
    let owner = check_owner(ctx, cfg.owner)?;
    let attribute_write_type = cfg.attribute_write_type.unwrap_or_default();
    if !["Append", "Replace", "Singleton", "Static"].contains(&attribute_write_type.as_str())
        || !matches!(cfg.action.as_deref(), Some("Create" | "Delete"))
    {
        return Err(fail(400, "validation", "The batch job config is invalid"));
    }
    let mut b = ctx.sim.batches();
    b.next_id += 1;
    let id = b.next_id;
    b.jobs.insert(
        id,
        Job {
            owner,
            delete: cfg.action.as_deref() == Some("Delete"),
            attribute_write_type,
            // ThreatConnect's default, which wipes existing tags.
            tag_write_type: cfg.tag_write_type.unwrap_or_else(|| "Replace".into()),
            security_label_write_type: cfg
                .security_label_write_type
                .unwrap_or_else(|| "Replace".into()),
            status: "Created",
            items: Vec::new(),
            next: 0,
            success: 0,
            errors: Vec::new(),
            unprocessed: 0,
            uploads: 0,
            upload_attempts: 0,
            lost: false,
            queued_seq: 0,
        },
    );
    Ok(Reply::Json(
        StatusCode::CREATED,
        json!({"status": "Success", "data": {"batchId": id}}),
    ))
}

/// `POST /v2/batch/<id>`: the data file, at most `batch_max_bytes`.
fn upload(ctx: &Ctx<'_>, id: i64) -> Result<Reply, Failure> {
    if let Some(j) = ctx.sim.batches().jobs.get_mut(&id) {
        j.upload_attempts += 1;
    }
    let limit = ctx.faults.batch_max_bytes;
    if limit > 0 && ctx.req.body.len() as u64 > limit {
        let message = format!("File size greater than allowable limit of {limit}");
        return Err(Failure {
            body: Some(json!({"status": "Invalid", "description": message})),
            ..fail(400, "upload_too_large", message)
        });
    }
    #[derive(Deserialize)]
    struct Data {
        indicator: Vec<Value>,
    }
    let data: Data = serde_json::from_slice(&ctx.req.body).map_err(|_| malformed())?;
    let lose = {
        let mut f = ctx.sim.faults();
        let lose = f.batch_lose_next > 0;
        f.batch_lose_next = f.batch_lose_next.saturating_sub(1);
        lose
    };
    let mut b = ctx.sim.batches();
    b.next_seq += 1;
    let seq = b.next_seq;
    let job = b
        .jobs
        .get_mut(&id)
        .filter(|j| !j.lost)
        .ok_or_else(not_found)?;
    if job.status != "Created" {
        return Err(fail(
            400,
            "validation",
            "The batch job already has its data",
        ));
    }
    job.items = data.indicator;
    job.status = "Queued";
    job.uploads += 1;
    job.lost = lose;
    job.queued_seq = seq;
    drop(b);
    if ctx.faults.batch_items_per_sec == 0 {
        process(ctx.sim, usize::MAX);
    }
    Ok(Reply::Json(
        StatusCode::ACCEPTED,
        json!({"status": "Queued"}),
    ))
}

/// `GET /v2/batch/<id>`.
fn status(ctx: &Ctx<'_>, id: i64) -> Result<Reply, Failure> {
    let b = ctx.sim.batches();
    let job = b.jobs.get(&id).filter(|j| !j.lost).ok_or_else(not_found)?;
    let status = if ctx.faults.batch_status_stuck && job.status == "Completed" {
        "Running"
    } else {
        job.status
    };
    Ok(Reply::Json(
        StatusCode::OK,
        json!({"status": "Success", "data": {"batchStatus": {
            "id": id, "status": status, "errorCount": job.errors.len(),
            "successCount": job.success, "unprocessCount": job.unprocessed,
        }}}),
    ))
}

/// `GET /v2/batch/<id>/results`: the errors with their JSON paths (404
/// under `batch_legacy_errors`, as on instances older than late 2023).
fn results(ctx: &Ctx<'_>, id: i64) -> Result<Reply, Failure> {
    if ctx.faults.batch_legacy_errors || ctx.faults.batch_errors_unlisted {
        return Err(not_found());
    }
    let b = ctx.sim.batches();
    let job = b.jobs.get(&id).filter(|j| !j.lost).ok_or_else(not_found)?;
    let list: Vec<Value> = job
        .errors
        .iter()
        .map(|e| match e.index {
            Some(i) => {
                let summary = e.item["summary"].as_str().unwrap_or("");
                let (code, kind) = if e.reason == FATAL {
                    ("0x1004", FATAL)
                } else if e.reason.starts_with(NOT_FOUND) {
                    ("0x1007", NOT_FOUND)
                } else {
                    ("0x1005", "Invalid indicator")
                };
                json!({"code": code, "severity": "Error", "errorReason": kind,
                       "errorMessage": format!("{} Last known JSON path: '$.indicator[{i}]': Last processed indicator[{i}] '{summary}'.", e.reason)})
            }
            None => json!({"code": "0x1001", "severity": "Error", "errorReason": e.reason,
                           "errorMessage": e.reason}),
        })
        .collect();
    Ok(Reply::Json(StatusCode::OK, Value::Array(list)))
}

/// `GET /v2/batch/<id>/errors`: gzip, under a content type that says
/// otherwise; 404 when there are none, 400 before completion.
fn legacy_errors(ctx: &Ctx<'_>, id: i64) -> Result<Reply, Failure> {
    let b = ctx.sim.batches();
    let job = b.jobs.get(&id).filter(|j| !j.lost).ok_or_else(not_found)?;
    if job.status != "Completed" {
        return Err(fail(400, "validation", "Batch still in Running state"));
    }
    if job.errors.is_empty() || ctx.faults.batch_errors_unlisted {
        return Err(not_found());
    }
    let list: Vec<Value> = job
        .errors
        .iter()
        .map(|e| json!({"errorReason": e.reason, "errorSource": e.item.to_string()}))
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(Value::Array(list).to_string().as_bytes())
        .and_then(|()| gz.flush())
        .expect("gzip to memory");
    let bytes = gz.finish().expect("gzip to memory");
    Ok(Reply::Raw(StatusCode::OK, "text/plain", bytes))
}

/// Processes up to `budget` items of the queued jobs, oldest upload first.
fn process(sim: &Shared, mut budget: usize) {
    let halt_after = sim.faults().batch_halt_after as usize;
    let faults = sim.faults().clone();
    let refused = faults.batch_refuse.clone();
    let mut b = sim.batches();
    while budget > 0 {
        let Some(job) = b
            .jobs
            .values_mut()
            .filter(|j| matches!(j.status, "Queued" | "Running") && !j.lost)
            .min_by_key(|j| j.queued_seq)
        else {
            return;
        };
        job.status = "Running";
        let mut store = sim.store();
        while budget > 0 && job.next < job.items.len() {
            if halt_after > 0 && job.next >= halt_after {
                // The exception comes while processing this item: it is not
                // applied, its error names it, the rest stay unprocessed.
                let i = job.next;
                job.errors.push(ItemError {
                    index: Some(i),
                    reason: FATAL.into(),
                    item: job.items[i].clone(),
                });
                job.unprocessed = (job.items.len() - i - 1) as u64;
                job.next = job.items.len();
                break;
            }
            let i = job.next;
            match apply_item(&mut store, job, &job.items[i], (&refused, &faults)) {
                Ok(()) => job.success += 1,
                Err(reason) => job.errors.push(ItemError {
                    index: Some(i),
                    reason,
                    item: job.items[i].clone(),
                }),
            }
            job.next += 1;
            budget -= 1;
        }
        if job.next >= job.items.len() {
            job.status = "Completed";
        }
    }
}

/// An item's type and summary.
fn kind_and_summary(item: &Value) -> Result<(IndicatorType, &str), String> {
    let summary = item["summary"].as_str().unwrap_or("");
    let type_name = item["type"].as_str().unwrap_or("");
    let kind = IndicatorType::from_tc_name(type_name)
        .ok_or_else(|| format!("Invalid indicator type {type_name:?}"))?;
    Ok((kind, summary))
}

/// What finds an item's indicator: each hash of a File, else its summary.
fn identifiers_of(kind: IndicatorType, summary: &str) -> Vec<String> {
    match kind {
        IndicatorType::File => summary.split(" : ").map(String::from).collect(),
        _ => vec![summary.to_string()],
    }
}

/// An item of a `Delete` job: the owner's indicator deleted, or not found.
fn delete_item(
    store: &mut Store,
    job: &Job,
    kind: IndicatorType,
    summary: &str,
) -> Result<(), String> {
    let idx = identifiers_of(kind, summary)
        .iter()
        .find_map(|i| {
            store
                .get(&job.owner, kind, i)
                .ok()
                .map(|ind| ind.id as usize - 1)
        })
        .ok_or_else(|| format!("{NOT_FOUND}: {} {summary:?}", kind.tc_name()))?;
    store.delete(idx);
    Ok(())
}

/// One item, checked like a create and written as the job's write types say
/// (a `Delete` job's: deleted).
fn apply_item(
    store: &mut Store,
    job: &Job,
    item: &Value,
    (refused, faults): (&[String], &super::Faults),
) -> Result<(), String> {
    let (kind, summary) = kind_and_summary(item)?;
    if job.delete {
        return delete_item(store, job, kind, summary);
    }
    validate::summary(kind, summary)
        .map_err(|_| format!("Please enter a valid {}", kind.tc_name()))?;
    if refused.iter().any(|r| r == summary) {
        return Err(format!(
            "Indicator {summary:?} is on the system exclusion list"
        ));
    }
    let (rating, confidence) = rating_and_confidence(kind, item).map_err(|f| f.message)?;
    let labels: Vec<&str> = item["securityLabel"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["name"].as_str())
        .collect();
    for l in &labels {
        faults.check_label(l)?;
    }
    let identifiers = identifiers_of(kind, summary);
    let Upsert::Stored(idx) = store.upsert(
        NewIndicator {
            owner: &job.owner,
            kind,
            summary: summary.to_string(),
            identifiers,
            rating,
            confidence,
        },
        false,
    ) else {
        unreachable!("an upsert that may update always stores")
    };
    let ind = &mut store.indicators[idx];
    ind.batch_items += 1;
    if job.tag_write_type == "Replace" {
        ind.tags.clear();
    }
    if job.security_label_write_type == "Replace" {
        ind.security_labels.clear();
    }
    ind.take_labels_and_dates(item, labels.iter().map(|l| (*l).to_string()));
    for t in item["tag"].as_array().into_iter().flatten() {
        if let Some(name) = t["name"].as_str() {
            ind.tags.insert(name.to_string());
        }
    }
    let incoming: Vec<(String, String)> = item["attribute"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| Some((a["type"].as_str()?.into(), a["value"].as_str()?.into())))
        .collect();
    match job.attribute_write_type.as_str() {
        "Static" => return Ok(()),
        "Replace" => ind.attributes.clear(),
        "Singleton" => ind
            .attributes
            .retain(|a| !incoming.iter().any(|(k, _)| k == &a.kind)),
        _ => {}
    }
    let date_added = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    for (kind, value) in incoming {
        ind.attributes.push(SimAttribute {
            kind,
            value,
            id: 0,
            date_added: date_added.clone(),
        });
    }
    Ok(())
}

/// Processes queued jobs at `batch_items_per_sec` until the simulator stops.
pub(super) async fn run_processor(sim: Arc<Shared>) {
    let tick = Duration::from_millis(20);
    let mut last = Instant::now();
    let mut carry = 0.0f64;
    loop {
        tokio::select! {
            () = sim.stopped.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
        let now = Instant::now();
        let rate = sim.faults().batch_items_per_sec;
        carry += rate as f64 * (now - last).as_secs_f64();
        last = now;
        if rate == 0 {
            carry = 0.0;
            continue;
        }
        let budget = carry.floor();
        carry -= budget;
        if budget >= 1.0 {
            process(&sim, budget as usize);
        }
    }
}
