//! A ThreatConnect stand-in (v2, v3 create, batch) for tests and the demo, faithful to tc-api.md:
//! it verifies every signature over the raw request target and the timestamp
//! window, validates values against ThreatConnect's format rules, answers with
//! ThreatConnect's exact messages, keeps what was created in memory, and
//! injects faults on demand.
//!
//! Routes are matched by hand on the raw request target so that the signature
//! is checked over exactly the bytes the client sent, before anything else.
//!
//! How a request travels, file by file:
//!
//! - [`router`]: the one axum handler. `/_sim/...` goes to [`control`];
//!   anything else is an API call: injected faults first, then
//!   [`auth`] (signature, timestamp window), then the v2 route, then the answer.
//! - [`faults`]: which injected failure applies to a request, the dropped
//!   connection, and the request counts of [`SimStats`].
//! - [`auth`]: the `Authorization`/`Timestamp` check (or the API token)
//!   and the `?owner=` check.
//! - [`v2`]: the ThreatConnect calls (owners, create, tag, attributes).
//! - [`v3`]: the v3 create (tags and attributes inline, an upsert).
//! - [`batch`]: the batch API, and the task that processes batch jobs.
//! - [`store`]: the indicators held in memory and their lookup index.
//! - [`control`]: the simulator's own `/_sim/...` endpoints.
//! - [`validate`]: ThreatConnect's format rules, independent of `normalize`.
//!
//! This file holds the public types and [`Simulator`] itself.

mod auth;
mod batch;
mod control;
mod faults;
mod reply;
mod router;
mod status;
mod store;
mod v2;
mod v3;
pub mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use batch::SimBatch;
use store::Store;

/// An owner the simulator knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimOwner {
    pub id: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// Faults to inject; settable at start and with `POST /_sim/faults` (fields
/// present in the JSON replace the current ones).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Fraction (0..1) of API requests answered with `error_status`.
    pub error_rate: f64,
    /// Status for `error_rate` and `fail_next` (500 or 503).
    pub error_status: u16,
    /// The next N API requests fail with `error_status`.
    pub fail_next: u32,
    /// The next N API requests are answered 429 with `Retry-After: retry_after_secs`.
    pub rate_limit_next: u32,
    pub retry_after_secs: u64,
    /// Added latency per API request.
    pub latency_ms: u64,
    /// Fraction (0..1) of API requests whose connection is dropped mid-answer.
    pub drop_rate: f64,
    /// The next N API requests have their connection dropped.
    pub drop_next: u32,
    /// Fraction (0..1) of API requests that are fully processed (what they
    /// create is stored) and whose connection is then dropped without an
    /// answer, whatever that answer was: the client cannot know the outcome.
    pub lost_response_rate: f64,
    /// The server's clock runs this many seconds ahead (negative: behind).
    pub clock_skew_secs: i64,
    /// Owners whose access is denied ("Access Denied", 403).
    pub denied_owners: Vec<String>,
    /// Answer a repeated File create with ThreatConnect's 400 "already exists".
    pub file_exists_400: bool,
    /// The batch API is off: `POST /v2/batch` answers 503 "Batch job api is
    /// not available...".
    pub batch_unavailable: bool,
    /// `POST /v2/batch` answers 403 "Access Denied" (a user without the
    /// batch API's rights), while per-indicator calls go through.
    pub batch_access_denied: bool,
    /// The largest batch data file accepted (0: any); larger uploads get
    /// 400 "File size greater than allowable limit of N".
    pub batch_max_bytes: u64,
    /// Batch items processed per second, across jobs in upload order
    /// (0: each job is processed as its data arrives).
    pub batch_items_per_sec: u64,
    /// Batch items (by summary) refused as on the exclusion list.
    pub batch_refuse: Vec<String>,
    /// `/v2/batch/<id>/results` and `/errors` both answer 404, even with
    /// `errorCount > 0`.
    pub batch_errors_unlisted: bool,
    /// The next N uploaded batch jobs are lost: their status answers 404.
    pub batch_lose_next: u32,
    /// A batch job stops with a job-level error (an unexpected exception)
    /// at the item after this many (0: never): that item is not applied
    /// and its error names its JSON path; the rest are counted unprocessed.
    pub batch_halt_after: u32,
    /// The next N batch uploads have their connection cut before they are
    /// processed (the job stays `Created`).
    pub batch_upload_drop_next: u32,
    /// The next N batch uploads are accepted and their answer is lost (the
    /// connection is cut after): the client cannot know they arrived.
    pub batch_upload_lost_next: u32,
    /// Batch jobs are processed, but their status says `Running` for ever
    /// (a job the client gives up on after ThreatConnect processed it).
    pub batch_status_stuck: bool,
    /// `/v2/batch/<id>/results` answers 404: errors only from the older
    /// `/errors` (gzip under a wrong content type).
    pub batch_legacy_errors: bool,
    /// Send the real time in the `Date` header while checking timestamps
    /// against the skewed clock (a proxy rewriting `Date`): a client cannot
    /// correct its clock from it.
    pub date_header_unskewed: bool,
    /// The configured API token has expired: `TC-Token` requests answer 401
    /// "Unauthorized" (set back to false: it is valid again).
    pub token_expired: bool,
    /// Security labels the instance lacks, of ThreatConnect's documented
    /// six (`TLP:CLEAR` on an older instance, say); any other name is
    /// unknown too.
    pub missing_security_labels: Vec<String>,
    /// `GET /v2/securityLabels` and `/v3/securityLabels` answer 404 (the
    /// client cannot read the list and sends labels as they are).
    pub security_labels_unlisted: bool,
}

/// ThreatConnect's documented security labels (tc-api.md section 9).
pub const DOCUMENTED_LABELS: [&str; 6] = [
    "TLP:WHITE",
    "TLP:GREEN",
    "TLP:AMBER",
    "TLP:RED",
    "TLP:CLEAR",
    "TLP:AMBER+STRICT",
];

impl Faults {
    /// The instance's security labels.
    pub fn security_labels(&self) -> Vec<&'static str> {
        DOCUMENTED_LABELS
            .into_iter()
            .filter(|l| !self.missing_security_labels.iter().any(|m| m == l))
            .collect()
    }

    /// ThreatConnect's refusal of a label the instance lacks (the
    /// simulator's text: the real one is not documented).
    pub(crate) fn check_label(&self, name: &str) -> Result<(), String> {
        if self.security_labels().contains(&name) {
            Ok(())
        } else {
            Err(format!("Security Label {name} does not exist"))
        }
    }
}

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub access_id: String,
    pub secret: String,
    /// The API token accepted as `Authorization: TC-Token <token>` (none:
    /// every token is refused).
    pub token: Option<String>,
    pub owners: Vec<SimOwner>,
    /// `""` (public cloud, `/v2/...`) or `"/api"` (sandbox and on-premise).
    pub base_path: String,
    pub faults: Faults,
}

pub const DEFAULT_ACCESS_ID: &str = "sim-access-id";
pub const DEFAULT_SECRET: &str = "sim-secret-key";
pub const DEFAULT_TOKEN: &str = "sim-api-token";

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            access_id: DEFAULT_ACCESS_ID.into(),
            secret: DEFAULT_SECRET.into(),
            token: Some(DEFAULT_TOKEN.into()),
            owners: vec![
                SimOwner {
                    id: 0,
                    name: "Exemplary Organization".into(),
                    kind: "Organization".into(),
                },
                SimOwner {
                    id: 1,
                    name: "Common Community".into(),
                    kind: "Community".into(),
                },
            ],
            base_path: String::new(),
            faults: Faults {
                error_status: 500,
                retry_after_secs: 1,
                batch_max_bytes: 2_000_000,
                ..Faults::default()
            },
        }
    }
}

/// An indicator as the simulator holds it (`GET /_sim/indicators`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimIndicator {
    pub id: u64,
    pub owner: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    pub rating: Option<f64>,
    pub confidence: Option<u64>,
    pub tags: BTreeSet<String>,
    pub attributes: Vec<SimAttribute>,
    /// How many creates reached it (a repeated create updates in place).
    pub create_count: u64,
    /// RFC 3339, as a v3 create gave them.
    #[serde(default)]
    pub first_seen: Option<String>,
    #[serde(default)]
    pub last_seen: Option<String>,
    /// How many batch job items created or updated it.
    #[serde(default)]
    pub batch_items: u64,
    #[serde(default)]
    pub security_labels: BTreeSet<String>,
    /// v3 and batch `externalDateExpires` and `externalLastModified`.
    #[serde(default)]
    pub external_date_expires: Option<String>,
    #[serde(default)]
    pub external_last_modified: Option<String>,
    /// Its status (tc-api.md section 9): a v3 PUT or create, or a batch
    /// item, with `active` changes it; a v2 create does not.
    #[serde(default = "active_by_default")]
    pub active: bool,
    /// Times it went from active to inactive, and back.
    #[serde(default)]
    pub deactivations: u64,
    #[serde(default)]
    pub reactivations: u64,
    /// Deleted: listed by `GET /_sim/deleted`, no longer by
    /// `/_sim/indicators`, and found by no call.
    #[serde(default)]
    pub deleted: bool,
}

fn active_by_default() -> bool {
    true
}

impl SimIndicator {
    /// Sets its status, counting a change.
    pub(crate) fn set_active(&mut self, active: bool) {
        match (self.active, active) {
            (true, false) => self.deactivations += 1,
            (false, true) => self.reactivations += 1,
            _ => {}
        }
        self.active = active;
    }

    /// Adds the labels a create or batch item carried, and takes its
    /// `externalDateExpires`, `externalLastModified` and `active` when given.
    pub(crate) fn take_labels_and_dates(
        &mut self,
        body: &serde_json::Value,
        labels: impl Iterator<Item = String>,
    ) {
        self.security_labels.extend(labels);
        let date = |k: &str| {
            body.get(k)
                .and_then(serde_json::Value::as_str)
                .map(String::from)
        };
        if let Some(t) = date("externalDateExpires") {
            self.external_date_expires = Some(t);
        }
        if let Some(t) = date("externalLastModified") {
            self.external_last_modified = Some(t);
        }
        if let Some(a) = body.get("active").and_then(serde_json::Value::as_bool) {
            self.set_active(a);
        }
    }
}

/// An attribute of a [`SimIndicator`]. `id` and `date_added` are given by the
/// simulator when it stores the attribute (and listed by
/// `GET .../attributes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimAttribute {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    #[serde(default)]
    pub id: u64,
    /// RFC 3339, UTC (`2026-01-02T03:04:05Z`).
    #[serde(default, rename = "dateAdded")]
    pub date_added: String,
}

/// Request counts (`GET /_sim/stats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub by_class: BTreeMap<String, u64>,
    /// API requests (not `/_sim`) by method and path without query, for tests
    /// that count what reached the server.
    pub by_endpoint: BTreeMap<String, u64>,
    /// Successful API requests that change something (every method but
    /// GET): a finished call sent again shows here, while probes and checks
    /// (GETs) do not.
    #[serde(default)]
    pub writes_succeeded: u64,
}

/// The state every request handler sees.
struct Shared {
    access_id: String,
    secret: String,
    token: Option<String>,
    owners: Vec<SimOwner>,
    base_path: String,
    faults: Mutex<Faults>,
    stats: Mutex<SimStats>,
    store: Mutex<Store>,
    batches: Mutex<batch::Batches>,
    /// Cancelled when the simulator stops: requests in progress are cut.
    stopped: CancellationToken,
}

impl Shared {
    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().expect("sim faults")
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, SimStats> {
        self.stats.lock().expect("sim stats")
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().expect("sim store")
    }

    /// Locked before `store` when both are held.
    fn batches(&self) -> std::sync::MutexGuard<'_, batch::Batches> {
        self.batches.lock().expect("sim batches")
    }
}

/// A running simulator.
pub struct Simulator {
    pub addr: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Simulator {
    /// Starts the simulator on `listener` in a background task.
    pub fn start(cfg: SimConfig, listener: TcpListener) -> std::io::Result<Self> {
        Self::start_on(cfg, listener, "http")
    }

    /// Starts on any axum listener (a TLS one in the tests of `api.ca_file`);
    /// `scheme` is what [`Simulator::base_url`] reports.
    pub fn start_on<L>(cfg: SimConfig, listener: L, scheme: &'static str) -> std::io::Result<Self>
    where
        L: axum::serve::Listener<Addr = SocketAddr>,
    {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            access_id: cfg.access_id,
            secret: cfg.secret,
            token: cfg.token,
            owners: cfg.owners,
            base_path: cfg.base_path.trim_end_matches('/').to_string(),
            faults: Mutex::new(cfg.faults),
            stats: Mutex::new(SimStats::default()),
            store: Mutex::new(Store::default()),
            batches: Mutex::default(),
            stopped: CancellationToken::new(),
        });
        tokio::spawn(batch::run_processor(shared.clone()));
        let app = axum::Router::new()
            .fallback(router::handle)
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            scheme,
            shared,
            shutdown: Some(tx),
            task,
        })
    }

    /// Binds `127.0.0.1:0` and starts.
    pub async fn start_local(cfg: SimConfig) -> std::io::Result<Self> {
        Self::start(cfg, TcpListener::bind("127.0.0.1:0").await?)
    }

    /// Binds `addr` and starts: given the `addr` of a simulator that was
    /// [stopped](Simulator::stop), a new one on the same port (an outage and
    /// a restart; the new one starts with an empty store and fresh stats).
    pub async fn start_on_addr(cfg: SimConfig, addr: SocketAddr) -> std::io::Result<Self> {
        Self::start(cfg, TcpListener::bind(addr).await?)
    }

    /// The base URL a client configures (`http://127.0.0.1:PORT[/api]`).
    pub fn base_url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.addr, self.shared.base_path)
    }

    /// The indicators held (not deleted).
    pub fn indicators(&self) -> Vec<SimIndicator> {
        let store = self.shared.store();
        store
            .indicators
            .iter()
            .filter(|i| !i.deleted)
            .cloned()
            .collect()
    }

    /// Deletes every indicator whose summary is `value`, as a user of the
    /// instance would.
    pub fn delete_value(&self, value: &str) {
        let mut store = self.shared.store();
        let found: Vec<usize> = (store.indicators.iter().enumerate())
            .filter(|(_, i)| i.value == value && !i.deleted)
            .map(|(n, _)| n)
            .collect();
        for n in found {
            store.delete(n);
        }
    }

    /// The indicators deleted.
    pub fn deleted(&self) -> Vec<SimIndicator> {
        let store = self.shared.store();
        store
            .indicators
            .iter()
            .filter(|i| i.deleted)
            .cloned()
            .collect()
    }

    /// The batch jobs created, in id order.
    pub fn batches(&self) -> Vec<SimBatch> {
        self.shared.batches().list()
    }

    pub fn stats(&self) -> SimStats {
        self.shared.stats().clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults() = faults;
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults().clone()
    }

    /// Stops accepting connections (the listening socket is closed at once,
    /// so [`Simulator::start_on_addr`] can take the port) and waits for the
    /// server: requests in progress get up to 5 s to finish, then their
    /// connections are cut. Once this returns, the simulator answers nothing
    /// and stores nothing more.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let grace = Duration::from_secs(5);
        if tokio::time::timeout(grace, &mut self.task).await.is_err() {
            // Each connection runs in its own task, which aborting the server
            // task would not end: the handlers cut their own connections.
            self.shared.stopped.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.task).await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shared.stopped.cancel();
        self.task.abort();
    }
}
