//! `kind = "misp"`: a MISP feed (`manifest.json`, one `<uuid>.json` per
//! event). Each event whose manifest `timestamp` is newer than the version
//! written before is fetched and written as one MISP event file; events
//! that left the manifest are recorded as removed. The manifest's
//! validators are stored only once every event it lists is written, so a
//! crash fetches the rest on the next poll.

use std::collections::HashMap;

use reqwest::header::{ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH};

use super::fetch::{FetchClass, FetchError};
use super::{Ctx, Failure, Polled};
use crate::queue::{SourceAdvance, Validators};

/// A uuid as a feed names its events (and our file names take them).
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

/// A manifest entry's `timestamp`: epoch seconds, as a string or a number.
fn timestamp(entry: &serde_json::Value) -> Option<i64> {
    match entry.get("timestamp")? {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

pub(super) async fn poll(ctx: &Ctx<'_>) -> Result<Polled, Failure> {
    let state = &ctx.state;
    let base = format!("{}/", ctx.cfg.url.trim_end_matches('/'));
    let mut headers = HeaderMap::new();
    if let Some(v) = state
        .etag
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(IF_NONE_MATCH, v);
    }
    let resp = ctx
        .fetcher
        .get(&format!("{base}manifest.json"), headers)
        .await?;
    if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Polled::unchanged());
    }
    let etag = resp
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = ctx.fetcher.body(resp).await?;
    let manifest: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&body).map_err(|e| {
            FetchError::new(
                FetchClass::Invalid,
                format!("{base}manifest.json is not a MISP feed manifest: {e}"),
            )
        })?;
    let known = ctx
        .queue
        .source_events(&ctx.cfg.name)
        .await
        .map_err(Failure::Queue)?;
    let mut polled = fetch_events(ctx, &base, &manifest, &known).await?;
    let removed: Vec<String> = known
        .keys()
        .filter(|uuid| !manifest.contains_key(*uuid))
        .cloned()
        .collect();
    if !removed.is_empty() {
        tracing::info!(source = %ctx.cfg.name, events = removed.len(), "events left the feed's manifest");
        ctx.queue
            .source_events_removed(&ctx.cfg.name, &removed)
            .await
            .map_err(Failure::Queue)?;
    }
    let advance = SourceAdvance {
        validators: (polled.missing == 0).then_some(Validators {
            etag,
            ..Validators::default()
        }),
        bytes: body.len() as u64,
        ..SourceAdvance::default()
    };
    ctx.advance(&advance).await?;
    polled.add(&advance);
    Ok(polled)
}

/// Every event of `manifest` newer than the version written before, oldest
/// first, each recorded once its file is in place.
async fn fetch_events(
    ctx: &Ctx<'_>,
    base: &str,
    manifest: &HashMap<String, serde_json::Value>,
    known: &HashMap<String, i64>,
) -> Result<Polled, Failure> {
    let listed: Vec<(&String, i64)> = manifest
        .iter()
        .filter(|(uuid, _)| is_uuid(uuid))
        .filter_map(|(uuid, e)| Some((uuid, timestamp(e)?)))
        .collect();
    if listed.len() < manifest.len() {
        tracing::warn!(
            source = %ctx.cfg.name,
            entries = manifest.len() - listed.len(),
            "manifest entries without a uuid name or a timestamp left out"
        );
    }
    let mut wanted: Vec<(&String, i64)> = listed
        .into_iter()
        .filter(|(uuid, ts)| known.get(*uuid).is_none_or(|seen| seen < ts))
        .collect();
    wanted.sort_by_key(|(_, ts)| *ts);
    let mut polled = Polled::default();
    for (uuid, ts) in wanted {
        // An event the manifest lists but the feed does not serve: the
        // others are fetched all the same, and it is asked for again on
        // the next poll (the manifest's ETag is not kept meanwhile).
        let resp = match ctx
            .fetcher
            .get(&format!("{base}{uuid}.json"), HeaderMap::new())
            .await
        {
            Ok(r) => r,
            Err(e) if e.class == FetchClass::ClientError => {
                tracing::warn!(source = %ctx.cfg.name, event = %uuid, error = %e.message, "event listed in the manifest but not served: skipped this poll");
                polled.missing += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let event = ctx.fetcher.body(resp).await?;
        ctx.spool.write(&event, &format!("{uuid}.json")).await?;
        let advance = SourceAdvance {
            event: Some((uuid.clone(), ts)),
            files: 1,
            objects: 1,
            bytes: event.len() as u64,
            ..SourceAdvance::default()
        };
        ctx.advance(&advance).await?;
        polled.add(&advance);
    }
    Ok(polled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_must_be_uuids_and_timestamps_numbers() {
        assert!(is_uuid("5f4b2b6e-1c8a-4d0e-9f3b-2a7c1e0d9b8a"));
        assert!(!is_uuid("../../../etc/passwd-aaaaaaaaaaaaaaaaaaaa"));
        assert!(!is_uuid("5f4b2b6e1c8a4d0e9f3b2a7c1e0d9b8a"));
        assert_eq!(
            timestamp(&serde_json::json!({"timestamp": "1700000000"})),
            Some(1_700_000_000)
        );
        assert_eq!(timestamp(&serde_json::json!({"timestamp": 17})), Some(17));
        assert_eq!(timestamp(&serde_json::json!({"info": "x"})), None);
    }
}
