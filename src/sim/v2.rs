//! The ThreatConnect v2 calls (tc-api.md sections 2, 3 and 8), reached once
//! the request is authenticated: `GET /v2/owners`, create an indicator, add a
//! tag, add and list attributes.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{decode, owner_of};
use super::reply::{ApiResult, Ctx, Failure, fail, not_found};
use super::store::{NewIndicator, Upsert};
use super::{SimOwner, validate};
use crate::indicator::IndicatorType;

/// The type a URL branch names (`hosts` is Host), or ThreatConnect's 404.
pub(super) fn branch_type(branch: &str) -> Result<IndicatorType, Failure> {
    Ok(match branch {
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
        _ => return Err(not_found()),
    })
}

pub(super) fn malformed() -> Failure {
    fail(400, "malformed", "The request was not properly formed")
}

/// `GET /v2/owners`: the owners not denied by the faults.
pub(super) fn owners(ctx: &Ctx<'_>) -> (StatusCode, Value) {
    let owners: Vec<&SimOwner> = ctx
        .sim
        .owners
        .iter()
        .filter(|o| !ctx.faults.denied_owners.contains(&o.name))
        .collect();
    (
        StatusCode::OK,
        json!({"status": "Success", "data": {"resultCount": owners.len(), "owner": owners}}),
    )
}

/// `GET /v2/securityLabels`: the instance's labels.
pub(super) fn security_labels(ctx: &Ctx<'_>) -> ApiResult {
    if ctx.faults.security_labels_unlisted {
        return Err(not_found());
    }
    let labels: Vec<Value> = ctx
        .faults
        .security_labels()
        .into_iter()
        .map(|name| json!({"name": name}))
        .collect();
    Ok((
        StatusCode::OK,
        json!({"status": "Success", "data": {"resultCount": labels.len(), "securityLabel": labels}}),
    ))
}

/// `POST .../<indicator>/securityLabels/<label>`: a label the instance
/// lacks answers 404, as the path names nothing.
pub(super) fn security_label(ctx: &Ctx<'_>, branch: &str, id: &str, label: &str) -> ApiResult {
    let kind = branch_type(branch)?;
    let owner = owner_of(ctx)?;
    let label = decode(label);
    ctx.faults.check_label(&label).map_err(|_| not_found())?;
    ctx.sim
        .store()
        .get_mut(&owner, kind, &decode(id))?
        .security_labels
        .insert(label);
    Ok((StatusCode::CREATED, json!({"status": "Success"})))
}

/// `POST /v2/indicators/<branch>`: creates the indicator, or updates the one
/// already held (a File answers 400 "already exists" under `file_exists_400`).
pub(super) fn create(ctx: &Ctx<'_>, branch: &str) -> ApiResult {
    let kind = branch_type(branch)?;
    let owner = owner_of(ctx)?;
    let body: Value = serde_json::from_slice(&ctx.req.body).map_err(|_| malformed())?;
    let (summary, identifiers) = value_fields(kind, &body)?;
    let (rating, confidence) = rating_and_confidence(kind, &body)?;
    let new = NewIndicator {
        owner: &owner,
        kind,
        summary,
        identifiers,
        rating,
        confidence,
    };
    let refuse_existing = kind == IndicatorType::File && ctx.faults.file_exists_400;
    let mut store = ctx.sim.store();
    let idx = match store.upsert(new, refuse_existing) {
        Upsert::Stored(idx) => idx,
        Upsert::Exists => {
            return Err(fail(
                400,
                "duplicate",
                "The MD5 for this File is invalid, a File with this MD5 already exists",
            ));
        }
    };
    let ind = &store.indicators[idx];
    let owner_obj = ctx.sim.owners.iter().find(|o| o.name == owner);
    let mut entity = json!({
        "id": ind.id,
        "owner": owner_obj,
        "dateAdded": httpdate::fmt_http_date(std::time::SystemTime::now()),
        "rating": ind.rating,
        "confidence": ind.confidence,
        "webLink": format!("https://sim.local/auth/indicators/details.xhtml?id={}", ind.id),
    });
    // The value fields (and anything else sent) are echoed back.
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

/// The summary of a create body and the identifiers the indicator is found
/// by (each hash of a File), checked against ThreatConnect's format rules.
pub(super) fn value_fields(
    kind: IndicatorType,
    body: &Value,
) -> Result<(String, Vec<String>), Failure> {
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
            let v = field(value_field(kind)).ok_or_else(invalid)?;
            (v.clone(), vec![v])
        }
    };
    validate::summary(kind, &summary).map_err(|_| invalid())?;
    Ok((summary, identifiers))
}

/// The body field holding the value of a type with a single value field.
fn value_field(kind: IndicatorType) -> &'static str {
    match kind {
        IndicatorType::Address => "ip",
        IndicatorType::EmailAddress => "address",
        IndicatorType::Host => "hostName",
        IndicatorType::Url => "text",
        IndicatorType::Asn => "AS Number",
        IndicatorType::Cidr => "Block",
        IndicatorType::Mutex => "Mutex",
        IndicatorType::UserAgent => "User Agent String",
        IndicatorType::File | IndicatorType::RegistryKey => {
            unreachable!("{kind} has several value fields")
        }
    }
}

/// `rating` (0 to 5) and `confidence` (0 to 100), each optional.
pub(super) fn rating_and_confidence(
    kind: IndicatorType,
    body: &Value,
) -> Result<(Option<f64>, Option<u64>), Failure> {
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
    Ok((rating, confidence))
}

/// `POST .../<indicator>/tags/<tag>` (no body): at most 128 characters.
pub(super) fn tag(ctx: &Ctx<'_>, branch: &str, id: &str, tag: &str) -> ApiResult {
    let kind = branch_type(branch)?;
    let owner = owner_of(ctx)?;
    let tag = decode(tag);
    if tag.is_empty() || tag.chars().count() > 128 {
        return Err(fail(400, "validation", "Please enter a valid Tag"));
    }
    ctx.sim
        .store()
        .get_mut(&owner, kind, &decode(id))?
        .tags
        .insert(tag);
    Ok((StatusCode::CREATED, json!({"status": "Success"})))
}

/// The body of an attribute POST (`displayed` and other fields are ignored).
#[derive(Deserialize)]
struct AttributeBody {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

/// `POST .../<indicator>/attributes`. Like ThreatConnect's v2, it appends:
/// the same attribute posted twice is held twice.
pub(super) fn add_attribute(ctx: &Ctx<'_>, branch: &str, id: &str) -> ApiResult {
    let kind = branch_type(branch)?;
    let owner = owner_of(ctx)?;
    let attr: AttributeBody = serde_json::from_slice(&ctx.req.body).map_err(|_| malformed())?;
    if attr.kind.is_empty() || attr.value.is_empty() {
        return Err(fail(400, "validation", "Please enter a valid Attribute"));
    }
    ctx.sim
        .store()
        .add_attribute(&owner, kind, &decode(id), &attr.kind, &attr.value)?;
    Ok((
        StatusCode::CREATED,
        json!({"status": "Success", "data": {"attribute": {"type": attr.kind, "value": attr.value}}}),
    ))
}

/// `GET .../<indicator>/attributes` (tc-api.md section 8): the indicator's
/// attributes in the order they were added.
pub(super) fn list_attributes(ctx: &Ctx<'_>, branch: &str, id: &str) -> ApiResult {
    let kind = branch_type(branch)?;
    let owner = owner_of(ctx)?;
    let store = ctx.sim.store();
    let ind = store.get(&owner, kind, &decode(id))?;
    let attributes: Vec<Value> = ind
        .attributes
        .iter()
        .map(|a| json!({"id": a.id, "type": a.kind, "value": a.value, "dateAdded": a.date_added}))
        .collect();
    Ok((
        StatusCode::OK,
        json!({"status": "Success", "data": {"resultCount": attributes.len(), "attribute": attributes}}),
    ))
}
