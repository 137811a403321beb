//! Injected failures (see [`Faults`]): which one applies to a request, the
//! connection cut that a client sees as a transport error, and the request
//! counts of [`SimStats`](super::SimStats).

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::Response;

use super::Faults;
use super::Shared;
use super::reply::{Failure, fail};

/// A fault applied instead of processing the request.
pub(super) enum Injected {
    /// Cut the connection without an answer; nothing is processed.
    Drop,
    /// Answer with this failure; nothing is processed.
    Fail(Failure),
}

/// Consumes one injected fault, if any applies to this request: first the
/// counted ones (`drop_next`, `fail_next`, `rate_limit_next`), then the
/// random ones (`drop_rate`, `error_rate`) drawn against `snapshot`.
pub(super) fn injected(sim: &Shared, snapshot: &Faults) -> Option<Injected> {
    let status = if snapshot.error_status == 0 {
        500
    } else {
        snapshot.error_status
    };
    let server_error = || fail(status, "injected_error", "An unknown error occurred");
    {
        let mut f = sim.faults();
        if f.drop_next > 0 {
            f.drop_next -= 1;
            return Some(Injected::Drop);
        }
        if f.fail_next > 0 {
            f.fail_next -= 1;
            return Some(Injected::Fail(server_error()));
        }
        if f.rate_limit_next > 0 {
            f.rate_limit_next -= 1;
            return Some(Injected::Fail(fail(
                429,
                "rate_limited",
                "Too many requests",
            )));
        }
    }
    if chance(snapshot.drop_rate) {
        return Some(Injected::Drop);
    }
    if chance(snapshot.error_rate) {
        return Some(Injected::Fail(server_error()));
    }
    None
}

/// Whether the answer to a request already processed is lost
/// (`lost_response_rate`): its connection is cut instead.
pub(super) fn lost_response(snapshot: &Faults) -> bool {
    chance(snapshot.lost_response_rate)
}

/// True with probability `rate` (never when `rate` is 0 or less).
fn chance(rate: f64) -> bool {
    rate > 0.0 && fastrand::f64() < rate
}

/// A response whose body fails after the headers: the connection is cut
/// mid-answer, which the client sees as a transport error.
pub(super) fn dropped_connection() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped by simulator"))
    });
    Response::builder()
        .status(StatusCode::OK)
        .body(Body::from_stream(stream))
        .expect("response")
}

/// Counts one API request under its status, class and endpoint
/// (`"<METHOD> <path>"`).
pub(super) fn record(sim: &Shared, endpoint: &str, status: u16, class: &str) {
    let mut s = sim.stats();
    s.requests += 1;
    *s.by_status.entry(status).or_default() += 1;
    *s.by_class.entry(class.to_string()).or_default() += 1;
    *s.by_endpoint.entry(endpoint.to_string()).or_default() += 1;
    if class == "success" && !endpoint.starts_with("GET ") {
        s.writes_succeeded += 1;
    }
}
