//! The simulator's one handler: reads the request as sent, routes it by hand
//! on the raw target (`/_sim/...` to the control endpoints, the rest to the
//! v2 API) and writes the answer in ThreatConnect's shape.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, Request, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::faults::{Injected, dropped_connection, injected, lost_response, record};
use super::reply::{ApiResult, Ctx, Failure, Reply, SimRequest, not_found};
use super::{Shared, auth, batch, control, status, v2, v3};
use crate::api::sign::unix_now;

/// The axum handler. Once the simulator is stopped, a request still in
/// progress has its connection cut.
pub(super) async fn handle(State(sim): State<Arc<Shared>>, req: Request<Body>) -> Response {
    tokio::select! {
        resp = answer(&sim, req) => resp,
        () = sim.stopped.cancelled() => dropped_connection(),
    }
}

async fn answer(sim: &Shared, req: Request<Body>) -> Response {
    let method = req.method().clone();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let headers = req.headers().clone();
    // Batch uploads go up to tens of megabytes (the upload limit is
    // checked by the batch handler, as ThreatConnect does).
    let body = axum::body::to_bytes(req.into_body(), 128 << 20)
        .await
        .unwrap_or_default();
    let req = SimRequest {
        method,
        target,
        headers,
        body,
    };
    match req.target.strip_prefix("/_sim/") {
        Some(rest) => control::handle(sim, &req.method, rest, &req.body),
        None => serve_api(sim, &req).await,
    }
}

/// An API call: latency and injected faults, then the call itself, then the
/// answer (or a connection cut, before or after the call), counted in the
/// stats.
async fn serve_api(sim: &Shared, req: &SimRequest) -> Response {
    let faults = sim.faults().clone();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let now = unix_now() + faults.clock_skew_secs;
    let endpoint = format!("{} {}", req.method, req.path());
    let upload = is_batch_upload(sim, req);
    if upload && take(&mut sim.faults().batch_upload_drop_next) {
        record(sim, &endpoint, 200, "dropped");
        return dropped_connection();
    }
    let result = match injected(sim, &faults) {
        Some(Injected::Drop) => {
            record(sim, &endpoint, 200, "dropped");
            return dropped_connection();
        }
        Some(Injected::Fail(f)) => Err(f),
        None => {
            let ctx = Ctx {
                sim,
                req,
                now,
                faults: &faults,
            };
            let result = api(&ctx);
            if lost_response(&faults) || (upload && take(&mut sim.faults().batch_upload_lost_next))
            {
                record(sim, &endpoint, 200, "lost_response");
                return dropped_connection();
            }
            result
        }
    };
    let v3 = req.path().contains("/v3/");
    let (reply, class, retry_after) = match result {
        Ok(reply) => (reply, "success", None),
        Err(f) => {
            let retry = (f.class == "rate_limited").then_some(faults.retry_after_secs);
            let body = match f.body {
                Some(b) => b,
                // v3's error shape (tc-api.md section 7).
                None if v3 => json!({"errCode": "0x1001", "message": f.message, "status": "Error"}),
                None => json!({"status": "Failure", "message": f.message}),
            };
            (Reply::Json(f.status, body), f.class, retry)
        }
    };
    let status = match &reply {
        Reply::Json(s, _) | Reply::Raw(s, _, _) => *s,
    };
    record(sim, &endpoint, status.as_u16(), class);
    let date_secs = if faults.date_header_unskewed {
        unix_now()
    } else {
        now
    };
    respond(reply, date_secs, retry_after)
}

/// `POST <base>/v2/batch/<id>`: a batch data upload.
fn is_batch_upload(sim: &Shared, req: &SimRequest) -> bool {
    req.method == Method::POST
        && req
            .path()
            .strip_prefix(&sim.base_path)
            .and_then(|p| p.strip_prefix("/v2/batch/"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// Takes one from a fault counter; whether there was one.
fn take(counter: &mut u32) -> bool {
    let had = *counter > 0;
    *counter = counter.saturating_sub(1);
    had
}

/// The answer, with a `Date` header at `date_secs` and `Retry-After`.
fn respond(reply: Reply, date_secs: i64, retry_after: Option<u64>) -> Response {
    let mut resp = match reply {
        Reply::Json(status, body) => (status, axum::Json(body)).into_response(),
        Reply::Raw(status, content_type, bytes) => {
            (status, [(header::CONTENT_TYPE, content_type)], bytes).into_response()
        }
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

/// Authenticates, then routes `<base>/v2/...` and `<base>/v3/...` by
/// method and path segments.
fn api(ctx: &Ctx<'_>) -> Result<Reply, Failure> {
    auth::authenticate(ctx)?;
    let path = ctx.req.path().strip_prefix(&ctx.sim.base_path);
    if let Some(rest) = path.and_then(|p| p.strip_prefix("/v3/")) {
        let one = rest
            .strip_prefix("indicators/")
            .filter(|n| !n.contains('/'));
        return match (&ctx.req.method, rest, one) {
            (&Method::POST, "indicators", _) => v3::create(ctx).map(Reply::from),
            (&Method::GET, "indicators", _) => status::list(ctx).map(Reply::from),
            (&Method::GET, "securityLabels", _) => v3::security_labels(ctx).map(Reply::from),
            (&Method::PUT, _, Some(named)) => status::put(ctx, named).map(Reply::from),
            (&Method::DELETE, _, Some(named)) => status::delete_v3(ctx, named).map(Reply::from),
            _ => Err(not_found()),
        };
    }
    let Some(rest) = path.and_then(|p| p.strip_prefix("/v2/")) else {
        return Err(not_found());
    };
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.first() == Some(&"batch") {
        return batch::route(ctx, &segments[1..]);
    }
    v2_route(ctx, &segments).map(Reply::from)
}

/// The v2 calls other than batch.
fn v2_route(ctx: &Ctx<'_>, segments: &[&str]) -> ApiResult {
    match (&ctx.req.method, segments) {
        (&Method::GET, ["owners"]) => Ok(v2::owners(ctx)),
        (&Method::GET, ["securityLabels"]) => v2::security_labels(ctx),
        (&Method::POST, ["indicators", branch, id, "securityLabels", label]) => {
            v2::security_label(ctx, branch, id, label)
        }
        (&Method::POST, ["indicators", branch]) => v2::create(ctx, branch),
        (&Method::DELETE, ["indicators", branch, id]) => status::delete_v2(ctx, branch, id),
        (&Method::POST, ["indicators", branch, id, "tags", tag]) => v2::tag(ctx, branch, id, tag),
        (&Method::POST, ["indicators", branch, id, "attributes"]) => {
            v2::add_attribute(ctx, branch, id)
        }
        (&Method::GET, ["indicators", branch, id, "attributes"]) => {
            v2::list_attributes(ctx, branch, id)
        }
        _ => Err(not_found()),
    }
}
