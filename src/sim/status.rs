//! Changing and retiring held indicators (tc-api.md section 9): v3 `PUT`
//! (`active`, tags) and `DELETE` by id or summary with the owner, the v3
//! listing by TQL `summary EQ "..."` (inactive ones only when the TQL asks
//! for `indicatorActive EQ false`), and the v2 `DELETE`.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::SimIndicator;
use super::auth::{decode, owner_of};
use super::reply::{ApiResult, Ctx, fail, not_found};
use super::v2::{branch_type, malformed};

fn view(ind: &SimIndicator) -> Value {
    json!({"id": ind.id, "type": ind.kind, "summary": ind.value, "active": ind.active,
           "tags": {"data": ind.tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>()}})
}

/// `PUT /v3/indicators/<id or summary>?owner=...`: `active` and `tags`
/// (appended) of the body applied.
pub(super) fn put(ctx: &Ctx<'_>, named: &str) -> ApiResult {
    let owner = owner_of(ctx)?;
    let body: Value = serde_json::from_slice(&ctx.req.body).map_err(|_| malformed())?;
    let mut store = ctx.sim.store();
    let idx = store
        .find_v3(&owner, &decode(named))
        .ok_or_else(not_found)?;
    let ind = &mut store.indicators[idx];
    if let Some(a) = body.get("active") {
        let a = a
            .as_bool()
            .ok_or_else(|| fail(400, "validation", "active must be true or false"))?;
        ind.set_active(a);
    }
    if let Some(tags) = body.pointer("/tags/data").and_then(Value::as_array) {
        for t in tags {
            let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() || name.chars().count() > crate::indicator::MAX_TAG_CHARS {
                return Err(fail(400, "validation", "Please enter a valid Tag"));
            }
            ind.tags.insert(name.to_string());
        }
    }
    Ok((
        StatusCode::OK,
        json!({"data": view(ind), "message": "Updated", "status": "Success"}),
    ))
}

/// `DELETE /v3/indicators/<id or summary>?owner=...`.
pub(super) fn delete_v3(ctx: &Ctx<'_>, named: &str) -> ApiResult {
    let owner = owner_of(ctx)?;
    let mut store = ctx.sim.store();
    let idx = store
        .find_v3(&owner, &decode(named))
        .ok_or_else(not_found)?;
    store.delete(idx);
    Ok((
        StatusCode::OK,
        json!({"message": "Deleted", "status": "Success"}),
    ))
}

/// `DELETE /v2/indicators/<branch>/<indicator>?owner=...`.
pub(super) fn delete_v2(ctx: &Ctx<'_>, branch: &str, id: &str) -> ApiResult {
    let kind = branch_type(branch)?;
    let owner = owner_of(ctx)?;
    let mut store = ctx.sim.store();
    let id = store.get(&owner, kind, &decode(id))?.id;
    store.delete(id as usize - 1);
    Ok((StatusCode::OK, json!({"status": "Success"})))
}

/// `GET /v3/indicators?owner=...&tql=...`: only `summary EQ "<value>"`,
/// optionally `AND indicatorActive EQ true|false`, is understood.
pub(super) fn list(ctx: &Ctx<'_>) -> ApiResult {
    let owner = owner_of(ctx)?;
    let tql = ctx
        .req
        .query()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "tql")
        .map(|(_, v)| decode(&v.replace('+', " ")))
        .ok_or_else(|| fail(400, "validation", "the simulator lists only by tql"))?;
    let (kind, summary, active) =
        parse_tql(&tql).ok_or_else(|| fail(400, "validation", format!("Invalid TQL: {tql}")))?;
    let store = ctx.sim.store();
    let data: Vec<Value> = store
        .by_summary(&owner, &summary)
        .filter(|i| i.active == active && kind.as_ref().is_none_or(|k| *k == i.kind))
        .map(view)
        .collect();
    Ok((StatusCode::OK, json!({"data": data, "status": "Success"})))
}

/// A quoted TQL string (`\"` and `\\` escaped) at the start of `s`, and
/// what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let rest = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.char_indices();
    let end = loop {
        match chars.next()? {
            (_, '\\') => out.push(chars.next()?.1),
            (i, '"') => break i,
            (_, c) => out.push(c),
        }
    };
    Some((out, rest[end + 1..].trim()))
}

/// Optionally `typeName EQ "T" AND `, then `summary EQ "v"`, then
/// optionally `AND indicatorActive EQ false|true`: the type asked for, the
/// summary and the status.
fn parse_tql(tql: &str) -> Option<(Option<String>, String, bool)> {
    let mut rest = tql.trim();
    let mut kind = None;
    if let Some(r) = rest.strip_prefix("typeName EQ ") {
        let (k, r) = quoted(r)?;
        kind = Some(k);
        rest = r.strip_prefix("AND ")?;
    }
    let (summary, tail) = quoted(rest.strip_prefix("summary EQ ")?)?;
    let active = match tail {
        "" => true,
        t => match t.strip_prefix("AND indicatorActive EQ ")? {
            "false" => false,
            "true" => true,
            _ => return None,
        },
    };
    Some((kind, summary, active))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tql_summary_with_escapes_and_status() {
        assert_eq!(
            super::parse_tql(r#"summary EQ "a\"b\\c""#),
            Some((None, r#"a"b\c"#.to_string(), true))
        );
        assert_eq!(
            super::parse_tql(
                r#"typeName EQ "Host" AND summary EQ "x" AND indicatorActive EQ false"#
            ),
            Some((Some("Host".to_string()), "x".to_string(), false))
        );
        assert_eq!(super::parse_tql("rating GT 2"), None);
    }
}
