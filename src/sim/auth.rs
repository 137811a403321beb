//! Who may call: the `TC` signature over the raw request target and the
//! ±300 s timestamp window (tc-api.md section 2), or the configured API
//! token (`TC-Token`), and the `?owner=` check.

use axum::http::header;

use super::reply::{Ctx, Failure, fail};
use crate::api::sign::signature;

/// How far a request's `Timestamp` may be from the server's clock.
const WINDOW_SECS: i64 = 300;

/// Checks the `TC` Authorization header and the Timestamp, over the raw target.
pub(super) fn authenticate(ctx: &Ctx<'_>) -> Result<(), Failure> {
    let headers = &ctx.req.headers;
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(token) = auth.strip_prefix("TC-Token ") {
        return check_token(ctx, token.trim());
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
    if id != ctx.sim.access_id {
        return Err(fail(401, "access_denied", "Access Denied"));
    }
    let expected = signature(
        ctx.sim.secret.as_bytes(),
        &ctx.req.target,
        ctx.req.method.as_str(),
        ts,
    );
    if expected != sig {
        return Err(fail(
            401,
            "signature",
            "Signature data did not match expected result",
        ));
    }
    if (ctx.now - ts).abs() > WINDOW_SECS {
        return Err(fail(
            401,
            "timestamp",
            "Timestamp out of acceptable time range",
        ));
    }
    Ok(())
}

/// Token auth: the configured token is accepted until the `token_expired`
/// fault says it has expired; any other token is refused the same way
/// (401 "Unauthorized"). No `Timestamp` is needed.
fn check_token(ctx: &Ctx<'_>, token: &str) -> Result<(), Failure> {
    let valid = ctx.sim.token.as_deref() == Some(token) && !ctx.faults.token_expired;
    if valid {
        Ok(())
    } else {
        Err(fail(401, "unauthorized", "Unauthorized"))
    }
}

/// The owner named by `?owner=` (decoded; `+` is a space), or the first owner.
/// Unknown: 403 "The requested owner was not found"; denied: 403 "Access Denied".
pub(super) fn owner_of(ctx: &Ctx<'_>) -> Result<String, Failure> {
    let owner = ctx
        .req
        .query()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("owner"))
        .map(|(_, v)| decode(&v.replace('+', " ")));
    check_owner(ctx, owner)
}

/// The owner named (the first owner when none is), if it exists and is not
/// denied.
pub(super) fn check_owner(ctx: &Ctx<'_>, owner: Option<String>) -> Result<String, Failure> {
    let sim = ctx.sim;
    let owner = owner.unwrap_or_else(|| {
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
    if ctx.faults.denied_owners.contains(&owner) {
        return Err(fail(403, "access_denied", "Access Denied"));
    }
    Ok(owner)
}

/// A percent-decoded path segment or query value.
pub(super) fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}
