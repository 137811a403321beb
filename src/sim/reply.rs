//! What the simulator's handlers share: the request as it came off the
//! wire, the context a handler works with, and the answers it gives
//! (ThreatConnect's failure shape, the 404, raw bytes).

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::Value;

use super::{Faults, Shared};

/// A request as it came off the wire: the target undecoded, as signed.
pub(super) struct SimRequest {
    pub(super) method: Method,
    /// Path and query exactly as sent (`/v2/indicators/hosts?owner=A%20B`).
    pub(super) target: String,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

impl SimRequest {
    /// The target without its query.
    pub(super) fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query without `?` (`""` when there is none).
    pub(super) fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }
}

/// What an API handler works with: the shared state, the request, the
/// server's (possibly skewed) clock and the faults as they were when the
/// request arrived.
pub(super) struct Ctx<'a> {
    pub(super) sim: &'a Shared,
    pub(super) req: &'a SimRequest,
    pub(super) now: i64,
    pub(super) faults: &'a Faults,
}

/// A failure answer in ThreatConnect's JSON shape, counted under `class`.
pub(super) struct Failure {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) class: &'static str,
    /// A body of another shape than `{"status":"Failure","message":...}`
    /// (the batch upload's `{"status":"Invalid","description":...}`).
    pub(super) body: Option<Value>,
}

pub(super) fn fail(status: u16, class: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        status: StatusCode::from_u16(status).expect("valid status"),
        message: message.into(),
        class,
        body: None,
    }
}

/// ThreatConnect's 404, for unknown routes and unknown indicators alike.
pub(super) fn not_found() -> Failure {
    fail(404, "not_found", "The requested resource was not found")
}

/// An API call's answer: a status and a JSON body, or a failure.
pub(super) type ApiResult = Result<(StatusCode, Value), Failure>;

/// An answer as it goes out.
pub(super) enum Reply {
    Json(StatusCode, Value),
    /// Bytes under a content type (the gzip of `/v2/batch/<id>/errors`).
    Raw(StatusCode, &'static str, Vec<u8>),
}

impl From<(StatusCode, Value)> for Reply {
    fn from((status, v): (StatusCode, Value)) -> Self {
        Reply::Json(status, v)
    }
}
