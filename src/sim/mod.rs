//! A ThreatConnect v2 stand-in for tests and the demo, faithful to tc-api.md:
//! it verifies every signature over the raw request target and the timestamp
//! window, validates values against ThreatConnect's format rules, answers with
//! ThreatConnect's exact messages, keeps what was created in memory, and
//! injects faults on demand.
//!
//! Routes are matched by hand on the raw request target so that the signature
//! is checked over exactly the bytes the client sent, before anything else.

pub mod validate;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::api::sign::{signature, unix_now};
use crate::indicator::IndicatorType;

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
    /// The server's clock runs this many seconds ahead (negative: behind).
    pub clock_skew_secs: i64,
    /// Owners whose access is denied ("Access Denied", 403).
    pub denied_owners: Vec<String>,
    /// Answer a repeated File create with ThreatConnect's 400 "already exists".
    pub file_exists_400: bool,
    /// Send the real time in the `Date` header while checking timestamps
    /// against the skewed clock (a proxy rewriting `Date`): a client cannot
    /// correct its clock from it.
    pub date_header_unskewed: bool,
}

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub access_id: String,
    pub secret: String,
    pub owners: Vec<SimOwner>,
    /// `""` (public cloud, `/v2/...`) or `"/api"` (sandbox and on-premise).
    pub base_path: String,
    pub faults: Faults,
}

pub const DEFAULT_ACCESS_ID: &str = "sim-access-id";
pub const DEFAULT_SECRET: &str = "sim-secret-key";

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            access_id: DEFAULT_ACCESS_ID.into(),
            secret: DEFAULT_SECRET.into(),
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimAttribute {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
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
}

struct Store {
    indicators: Vec<SimIndicator>,
    /// (owner, type, identifier) to index; a File is filed under each hash.
    index: HashMap<(String, IndicatorType, String), usize>,
}

struct Shared {
    access_id: String,
    secret: String,
    owners: Vec<SimOwner>,
    base_path: String,
    faults: Mutex<Faults>,
    stats: Mutex<SimStats>,
    store: Mutex<Store>,
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
            owners: cfg.owners,
            base_path: cfg.base_path.trim_end_matches('/').to_string(),
            faults: Mutex::new(cfg.faults),
            stats: Mutex::new(SimStats::default()),
            store: Mutex::new(Store {
                indicators: Vec::new(),
                index: HashMap::new(),
            }),
        });
        let app = axum::Router::new()
            .fallback(handle)
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

    /// The base URL a client configures (`http://127.0.0.1:PORT[/api]`).
    pub fn base_url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.addr, self.shared.base_path)
    }

    pub fn indicators(&self) -> Vec<SimIndicator> {
        self.shared
            .store
            .lock()
            .expect("sim store")
            .indicators
            .clone()
    }

    pub fn stats(&self) -> SimStats {
        self.shared.stats.lock().expect("sim stats").clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().expect("sim faults") = faults;
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults.lock().expect("sim faults").clone()
    }

    /// Stops accepting connections and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn branch_type(branch: &str) -> Option<IndicatorType> {
    Some(match branch {
        "addresses" => IndicatorType::Address,
        "emailAddresses" => IndicatorType::EmailAddress,
        "files" => IndicatorType::File,
        "hosts" => IndicatorType::Host,
        "urls" => IndicatorType::Url,
        "asns" => IndicatorType::Asn,
        "cidrBlocks" => IndicatorType::Cidr,
        "mutexes" => IndicatorType::Mutex,
        "registryKeys" => IndicatorType::RegistryKey,
        "userAgents" => IndicatorType::UserAgent,
        _ => return None,
    })
}

/// A failure answer in ThreatConnect's JSON shape, counted under `class`.
struct Failure {
    status: StatusCode,
    message: String,
    class: &'static str,
}

fn fail(status: u16, class: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        status: StatusCode::from_u16(status).expect("valid status"),
        message: message.into(),
        class,
    }
}

async fn handle(State(sim): State<Arc<Shared>>, req: Request<Body>) -> Response {
    let method = req.method().clone();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 4 << 20)
        .await
        .unwrap_or_default();

    if let Some(rest) = target.strip_prefix("/_sim/") {
        return control(&sim, &method, rest, &body);
    }

    let faults = sim.faults.lock().expect("sim faults").clone();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let now = unix_now() + faults.clock_skew_secs;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let endpoint = format!("{method} {path}");
    let result = match injected(&sim, &faults) {
        Some(Injected::Drop) => {
            record(&sim, &endpoint, 200, "dropped");
            return dropped_connection();
        }
        Some(Injected::Fail(f)) => Err(f),
        None => api(
            &sim, &method, &target, path, query, &headers, &body, now, &faults,
        ),
    };
    let (status, body, class, retry_after) = match result {
        Ok((status, v)) => (status, v, "success", None),
        Err(f) => {
            let retry = (f.class == "rate_limited").then_some(faults.retry_after_secs);
            (
                f.status,
                json!({"status": "Failure", "message": f.message}),
                f.class,
                retry,
            )
        }
    };
    record(&sim, &endpoint, status.as_u16(), class);
    let mut resp = (status, axum::Json(body)).into_response();
    let date_secs = if faults.date_header_unskewed {
        unix_now()
    } else {
        now
    };
    let date = httpdate::fmt_http_date(
        std::time::UNIX_EPOCH + Duration::from_secs(date_secs.max(0) as u64),
    );
    resp.headers_mut().insert(
        header::DATE,
        HeaderValue::from_str(&date).expect("http date"),
    );
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

enum Injected {
    Drop,
    Fail(Failure),
}

/// Consumes one injected fault, if any applies to this request.
fn injected(sim: &Shared, snapshot: &Faults) -> Option<Injected> {
    let mut f = sim.faults.lock().expect("sim faults");
    let status = if snapshot.error_status == 0 {
        500
    } else {
        snapshot.error_status
    };
    if f.drop_next > 0 {
        f.drop_next -= 1;
        return Some(Injected::Drop);
    }
    if f.fail_next > 0 {
        f.fail_next -= 1;
        return Some(Injected::Fail(fail(
            status,
            "injected_error",
            "An unknown error occurred",
        )));
    }
    if f.rate_limit_next > 0 {
        f.rate_limit_next -= 1;
        return Some(Injected::Fail(fail(
            429,
            "rate_limited",
            "Too many requests",
        )));
    }
    drop(f);
    if snapshot.drop_rate > 0.0 && fastrand::f64() < snapshot.drop_rate {
        return Some(Injected::Drop);
    }
    if snapshot.error_rate > 0.0 && fastrand::f64() < snapshot.error_rate {
        return Some(Injected::Fail(fail(
            status,
            "injected_error",
            "An unknown error occurred",
        )));
    }
    None
}

/// A response whose body fails after the headers: the connection is cut
/// mid-answer, which the client sees as a transport error.
fn dropped_connection() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped by simulator"))
    });
    Response::builder()
        .status(StatusCode::OK)
        .body(Body::from_stream(stream))
        .expect("response")
}

fn record(sim: &Shared, endpoint: &str, status: u16, class: &str) {
    let mut s = sim.stats.lock().expect("sim stats");
    s.requests += 1;
    *s.by_status.entry(status).or_default() += 1;
    *s.by_class.entry(class.to_string()).or_default() += 1;
    *s.by_endpoint.entry(endpoint.to_string()).or_default() += 1;
}

fn control(sim: &Shared, method: &Method, rest: &str, body: &[u8]) -> Response {
    match (method, rest) {
        (&Method::GET, "indicators") => {
            axum::Json(sim.store.lock().expect("sim store").indicators.clone()).into_response()
        }
        (&Method::GET, "stats") => {
            axum::Json(sim.stats.lock().expect("sim stats").clone()).into_response()
        }
        (&Method::GET, "faults") => {
            axum::Json(sim.faults.lock().expect("sim faults").clone()).into_response()
        }
        (&Method::POST, "faults") => {
            let current = serde_json::to_value(&*sim.faults.lock().expect("sim faults"))
                .expect("faults serialize");
            let patch: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => {
                    return (StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")).into_response();
                }
            };
            let mut merged = current;
            if let (Some(m), Some(p)) = (merged.as_object_mut(), patch.as_object()) {
                for (k, v) in p {
                    m.insert(k.clone(), v.clone());
                }
            }
            match serde_json::from_value::<Faults>(merged) {
                Ok(f) => {
                    *sim.faults.lock().expect("sim faults") = f.clone();
                    axum::Json(f).into_response()
                }
                Err(e) => (StatusCode::BAD_REQUEST, format!("invalid faults: {e}")).into_response(),
            }
        }
        _ => (StatusCode::NOT_FOUND, "unknown simulator endpoint").into_response(),
    }
}

type ApiResult = Result<(StatusCode, Value), Failure>;

#[allow(clippy::too_many_arguments)]
fn api(
    sim: &Shared,
    method: &Method,
    target: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
    faults: &Faults,
) -> ApiResult {
    authenticate(sim, method, target, headers, now)?;
    let Some(rest) = path
        .strip_prefix(&sim.base_path)
        .and_then(|p| p.strip_prefix("/v2/"))
    else {
        return Err(fail(
            404,
            "not_found",
            "The requested resource was not found",
        ));
    };
    let segments: Vec<&str> = rest.split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["owners"]) => {
            let owners: Vec<&SimOwner> = sim
                .owners
                .iter()
                .filter(|o| !faults.denied_owners.contains(&o.name))
                .collect();
            Ok((
                StatusCode::OK,
                json!({"status": "Success", "data": {"resultCount": owners.len(), "owner": owners}}),
            ))
        }
        (&Method::POST, ["indicators", branch]) => {
            let kind = branch_type(branch)
                .ok_or_else(|| fail(404, "not_found", "The requested resource was not found"))?;
            let owner = owner_of(sim, query, faults)?;
            create(sim, kind, &owner, body, faults)
        }
        (&Method::POST, ["indicators", branch, id, "tags", tag]) => {
            let kind = branch_type(branch)
                .ok_or_else(|| fail(404, "not_found", "The requested resource was not found"))?;
            let owner = owner_of(sim, query, faults)?;
            let tag = decode(tag);
            if tag.is_empty() || tag.chars().count() > 128 {
                return Err(fail(400, "validation", "Please enter a valid Tag"));
            }
            with_indicator(sim, &owner, kind, &decode(id), |ind| {
                ind.tags.insert(tag.clone());
            })?;
            Ok((StatusCode::CREATED, json!({"status": "Success"})))
        }
        (&Method::POST, ["indicators", branch, id, "attributes"]) => {
            let kind = branch_type(branch)
                .ok_or_else(|| fail(404, "not_found", "The requested resource was not found"))?;
            let owner = owner_of(sim, query, faults)?;
            let attr: SimAttribute = serde_json::from_slice(body)
                .map_err(|_| fail(400, "malformed", "The request was not properly formed"))?;
            if attr.kind.is_empty() || attr.value.is_empty() {
                return Err(fail(400, "validation", "Please enter a valid Attribute"));
            }
            with_indicator(sim, &owner, kind, &decode(id), |ind| {
                if !ind.attributes.contains(&attr) {
                    ind.attributes.push(attr.clone());
                }
            })?;
            Ok((
                StatusCode::CREATED,
                json!({"status": "Success", "data": {"attribute": {"type": attr.kind, "value": attr.value}}}),
            ))
        }
        _ => Err(fail(
            404,
            "not_found",
            "The requested resource was not found",
        )),
    }
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Checks the `TC` Authorization header and the Timestamp, over the raw target.
fn authenticate(
    sim: &Shared,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    now: i64,
) -> Result<(), Failure> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth.starts_with("TC-Token ") {
        // The simulator issues no tokens: every token has expired.
        return Err(fail(401, "unauthorized", "Unauthorized"));
    }
    let Some((id, sig)) = auth.strip_prefix("TC ").and_then(|a| a.rsplit_once(':')) else {
        return Err(fail(401, "access_denied", "Access Denied"));
    };
    let Some(ts) = headers
        .get("Timestamp")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
    else {
        return Err(fail(401, "timestamp", "Invalid timestamp"));
    };
    if id != sim.access_id {
        return Err(fail(401, "access_denied", "Access Denied"));
    }
    if signature(sim.secret.as_bytes(), target, method.as_str(), ts) != sig {
        return Err(fail(
            401,
            "signature",
            "Signature data did not match expected result",
        ));
    }
    if (now - ts).abs() > 300 {
        return Err(fail(
            401,
            "timestamp",
            "Timestamp out of acceptable time range",
        ));
    }
    Ok(())
}

/// The owner named by `?owner=` (decoded; `+` is a space), or the first owner.
fn owner_of(sim: &Shared, query: &str, faults: &Faults) -> Result<String, Failure> {
    let owner = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("owner"))
        .map(|(_, v)| decode(&v.replace('+', " ")))
        .unwrap_or_else(|| {
            sim.owners
                .first()
                .map(|o| o.name.clone())
                .unwrap_or_default()
        });
    if !sim.owners.iter().any(|o| o.name == owner) {
        return Err(fail(
            403,
            "owner_not_found",
            "The requested owner was not found",
        ));
    }
    if faults.denied_owners.contains(&owner) {
        return Err(fail(403, "access_denied", "Access Denied"));
    }
    Ok(owner)
}

fn create(
    sim: &Shared,
    kind: IndicatorType,
    owner: &str,
    body: &[u8],
    faults: &Faults,
) -> ApiResult {
    let body: Value = serde_json::from_slice(body)
        .map_err(|_| fail(400, "malformed", "The request was not properly formed"))?;
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let invalid = || {
        fail(
            400,
            "validation",
            format!("Please enter a valid {}", kind.tc_name()),
        )
    };
    let (summary, identifiers) = match kind {
        IndicatorType::File => {
            let hashes: Vec<String> = ["md5", "sha1", "sha256"]
                .iter()
                .filter_map(|k| field(k))
                .collect();
            if hashes.is_empty() {
                return Err(invalid());
            }
            (hashes.join(" : "), hashes)
        }
        IndicatorType::RegistryKey => {
            let (Some(k), Some(n), Some(t)) =
                (field("Key Name"), field("Value Name"), field("Value Type"))
            else {
                return Err(invalid());
            };
            validate::registry(&k, &n, &t).map_err(|_| invalid())?;
            let s = format!("{k} : {n} : {t}");
            (s.clone(), vec![s])
        }
        _ => {
            let key = match kind {
                IndicatorType::Address => "ip",
                IndicatorType::EmailAddress => "address",
                IndicatorType::Host => "hostName",
                IndicatorType::Url => "text",
                IndicatorType::Asn => "AS Number",
                IndicatorType::Cidr => "Block",
                IndicatorType::Mutex => "Mutex",
                IndicatorType::UserAgent => "User Agent String",
                IndicatorType::File | IndicatorType::RegistryKey => unreachable!("handled above"),
            };
            let v = field(key).ok_or_else(invalid)?;
            (v.clone(), vec![v])
        }
    };
    validate::summary(kind, &summary).map_err(|_| invalid())?;
    let rating = body.get("rating").and_then(Value::as_f64);
    if rating.is_some_and(|r| !(0.0..=5.0).contains(&r)) {
        return Err(fail(
            400,
            "validation",
            format!("The rating for this {} is invalid", kind.tc_name()),
        ));
    }
    let confidence = body.get("confidence").and_then(Value::as_u64);
    if confidence.is_some_and(|c| c > 100) {
        return Err(fail(
            400,
            "validation",
            format!("The confidence for this {} is invalid", kind.tc_name()),
        ));
    }
    let mut store = sim.store.lock().expect("sim store");
    let existing = identifiers.iter().find_map(|i| {
        store
            .index
            .get(&(owner.to_string(), kind, i.clone()))
            .copied()
    });
    let idx = match existing {
        Some(idx) => {
            if kind == IndicatorType::File && faults.file_exists_400 {
                return Err(fail(
                    400,
                    "duplicate",
                    "The MD5 for this File is invalid, a File with this MD5 already exists",
                ));
            }
            let ind = &mut store.indicators[idx];
            ind.create_count += 1;
            ind.rating = rating.or(ind.rating);
            ind.confidence = confidence.or(ind.confidence);
            idx
        }
        None => {
            let idx = store.indicators.len();
            store.indicators.push(SimIndicator {
                id: idx as u64 + 1,
                owner: owner.to_string(),
                kind: kind.tc_name().to_string(),
                value: summary.clone(),
                rating,
                confidence,
                tags: BTreeSet::new(),
                attributes: Vec::new(),
                create_count: 1,
            });
            idx
        }
    };
    for i in identifiers {
        store.index.insert((owner.to_string(), kind, i), idx);
    }
    let ind = &store.indicators[idx];
    let owner_obj = sim.owners.iter().find(|o| o.name == owner);
    let mut entity = json!({
        "id": ind.id,
        "owner": owner_obj,
        "dateAdded": httpdate::fmt_http_date(std::time::SystemTime::now()),
        "rating": ind.rating,
        "confidence": ind.confidence,
        "webLink": format!("https://sim.local/auth/indicators/details.xhtml?id={}", ind.id),
    });
    if let (Some(e), Some(b)) = (entity.as_object_mut(), body.as_object()) {
        for (k, v) in b {
            if k != "rating" && k != "confidence" {
                e.insert(k.clone(), v.clone());
            }
        }
    }
    Ok((
        StatusCode::CREATED,
        json!({"status": "Success", "data": {kind.entity(): entity}}),
    ))
}

fn with_indicator(
    sim: &Shared,
    owner: &str,
    kind: IndicatorType,
    id: &str,
    f: impl FnOnce(&mut SimIndicator),
) -> Result<(), Failure> {
    let mut store = sim.store.lock().expect("sim store");
    let idx = store
        .index
        .get(&(owner.to_string(), kind, id.to_string()))
        .copied()
        .ok_or_else(|| fail(404, "not_found", "The requested resource was not found"))?;
    f(&mut store.indicators[idx]);
    Ok(())
}
