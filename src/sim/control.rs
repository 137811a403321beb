//! The simulator's own endpoints, unsigned and never faulted:
//! `GET /_sim/indicators` (those not deleted), `GET /_sim/deleted`, `GET /_sim/stats`, `GET /_sim/batches`, `GET /_sim/faults`, and
//! `POST /_sim/faults` (the fields given replace the current ones:
//! `{"token_expired": true}` expires the configured API token).

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{Faults, Shared};

/// Answers `/_sim/<rest>`.
pub(super) fn handle(sim: &Shared, method: &Method, rest: &str, body: &[u8]) -> Response {
    match (method, rest) {
        (&Method::GET, "indicators") => {
            let held: Vec<_> = (sim.store().indicators.iter())
                .filter(|i| !i.deleted)
                .cloned()
                .collect();
            axum::Json(held).into_response()
        }
        (&Method::GET, "deleted") => {
            let gone: Vec<_> = (sim.store().indicators.iter())
                .filter(|i| i.deleted)
                .cloned()
                .collect();
            axum::Json(gone).into_response()
        }
        (&Method::GET, "stats") => axum::Json(sim.stats().clone()).into_response(),
        (&Method::GET, "batches") => axum::Json(sim.batches().list()).into_response(),
        (&Method::GET, "faults") => axum::Json(sim.faults().clone()).into_response(),
        (&Method::POST, "faults") => match patch_faults(sim, body) {
            Ok(f) => axum::Json(f).into_response(),
            Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
        },
        _ => (StatusCode::NOT_FOUND, "unknown simulator endpoint").into_response(),
    }
}

/// Merges the JSON object `body` into the current faults and applies the
/// result; the error text is the 400 answer.
fn patch_faults(sim: &Shared, body: &[u8]) -> Result<Faults, String> {
    let current = serde_json::to_value(&*sim.faults()).expect("faults serialize");
    let patch: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut merged = current;
    if let (Some(m), Some(p)) = (merged.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            m.insert(k.clone(), v.clone());
        }
    }
    let faults: Faults =
        serde_json::from_value(merged).map_err(|e| format!("invalid faults: {e}"))?;
    *sim.faults() = faults.clone();
    Ok(faults)
}
