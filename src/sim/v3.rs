//! The v3 create (tc-api.md section 7): one request with the value fields,
//! rating, confidence, first and last seen, tags and attributes; a create of
//! an indicator the owner has updates it.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{check_owner, owner_of};
use super::reply::{ApiResult, Ctx, fail};
use super::store::{NewIndicator, Upsert};
use super::v2::{malformed, rating_and_confidence, value_fields};
use crate::indicator::{IndicatorType, MAX_TAG_CHARS};

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct Attr {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

#[derive(Deserialize)]
struct Data<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
}

/// `POST /v3/indicators?owner=...` (or `ownerName` in the body).
pub(super) fn create(ctx: &Ctx<'_>) -> ApiResult {
    let body: Value = serde_json::from_slice(&ctx.req.body).map_err(|_| malformed())?;
    let owner = if ctx.req.query().contains("owner=") {
        owner_of(ctx)?
    } else {
        let named = body.get("ownerName").and_then(Value::as_str);
        check_owner(ctx, named.map(String::from))?
    };
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .and_then(IndicatorType::from_tc_name)
        .ok_or_else(|| fail(400, "validation", "Please enter a valid type"))?;
    for read_only in ["description", "source"] {
        if body.get(read_only).is_some() {
            return Err(fail(
                400,
                "validation",
                format!("The field {read_only} is read-only: send it as an attribute"),
            ));
        }
    }
    let (summary, identifiers) = value_fields(kind, &body)?;
    let (rating, confidence) = rating_and_confidence(kind, &body)?;
    let tags: Data<Named> = parse_field(&body, "tags")?;
    if tags
        .data
        .iter()
        .any(|t| t.name.is_empty() || t.name.chars().count() > MAX_TAG_CHARS)
    {
        return Err(fail(400, "validation", "Please enter a valid Tag"));
    }
    let attributes: Data<Attr> = parse_field(&body, "attributes")?;
    if attributes
        .data
        .iter()
        .any(|a| a.kind.is_empty() || a.value.is_empty())
    {
        return Err(fail(400, "validation", "Please enter a valid Attribute"));
    }
    let labels: Data<Named> = parse_field(&body, "securityLabels")?;
    if let Some(m) = labels
        .data
        .iter()
        .find_map(|l| ctx.faults.check_label(&l.name).err())
    {
        return Err(fail(400, "validation", m));
    }
    let seen = |k: &str| body.get(k).and_then(Value::as_str).map(String::from);
    let mut store = ctx.sim.store();
    let Upsert::Stored(idx) = store.upsert(
        NewIndicator {
            owner: &owner,
            kind,
            summary,
            identifiers: identifiers.clone(),
            rating,
            confidence,
        },
        false,
    ) else {
        unreachable!("an upsert that may update always stores")
    };
    {
        let ind = &mut store.indicators[idx];
        ind.tags.extend(tags.data.into_iter().map(|t| t.name));
        ind.first_seen = seen("firstSeen").or(ind.first_seen.take());
        ind.last_seen = seen("lastSeen").or(ind.last_seen.take());
        ind.take_labels_and_dates(&body, labels.data.into_iter().map(|l| l.name));
    }
    // Inline attributes append, as v2's do: whether ThreatConnect appends
    // them again on an update is not documented, and this is the harsher.
    for a in &attributes.data {
        store.add_attribute(&owner, kind, &identifiers[0], &a.kind, &a.value)?;
    }
    let ind = &store.indicators[idx];
    Ok((
        StatusCode::CREATED,
        json!({"data": {"id": ind.id, "type": ind.kind, "summary": ind.value,
               "rating": ind.rating, "confidence": ind.confidence},
               "message": "Created", "status": "Success"}),
    ))
}

/// `GET /v3/securityLabels`: the instance's labels.
pub(super) fn security_labels(ctx: &Ctx<'_>) -> ApiResult {
    if ctx.faults.security_labels_unlisted {
        return Err(super::reply::not_found());
    }
    let labels: Vec<Value> = ctx
        .faults
        .security_labels()
        .into_iter()
        .enumerate()
        .map(|(i, name)| json!({"id": i + 1, "name": name}))
        .collect();
    Ok((StatusCode::OK, json!({"data": labels, "status": "Success"})))
}

/// `body[key]` as `{"data": [...]}`, empty when absent.
fn parse_field<T: serde::de::DeserializeOwned>(
    body: &Value,
    key: &str,
) -> Result<Data<T>, super::reply::Failure> {
    match body.get(key) {
        None => Ok(Data { data: Vec::new() }),
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| malformed()),
    }
}
