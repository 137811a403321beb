//! TAXII 2.1, client side: a collection's objects polled page by page
//! (`added_after`, `limit`, `next`), each page written as one STIX bundle;
//! and discovery for `tc-ingest sources discover`.
//!
//! The cursor is the server's `X-TAXII-Date-Added-Last`, never our clock.
//! A server may give the objects of one upload the same `date_added`
//! across a page end while `added_after` is strict, so after a page with
//! more to come the cursor is that header minus one microsecond; only a
//! poll that ends (`more: false`) stores the header itself. A crash
//! re-reads at most the rest of a tie, which the queue's dedup absorbs.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::fetch::{FetchClass, FetchError, Fetcher};
use super::{Ctx, Failure, Polled};
use crate::queue::SourceAdvance;

/// TAXII 2.1's media type, asked for on every request.
pub const MEDIA_TYPE: &str = "application/taxii+json;version=2.1";
/// Pages in one poll at most: a server that never says `more: false`.
const MAX_PAGES: u32 = 10_000;

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    more: bool,
    next: Option<String>,
    #[serde(default)]
    objects: Vec<Box<RawValue>>,
}

fn accept() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_static(MEDIA_TYPE));
    h
}

fn invalid(message: impl Into<String>) -> FetchError {
    FetchError::new(FetchClass::Invalid, message)
}

/// `url` with one trailing slash.
fn dir(url: &str) -> String {
    format!("{}/", url.trim_end_matches('/'))
}

/// A TAXII timestamp, parsed.
fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).ok()
}

/// A timestamp as TAXII writes it, to the microsecond.
fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Where the next poll starts after a page whose last object was added at
/// `last`: just before it while the poll goes on, at it once it ended.
fn cursor_after(last: OffsetDateTime, ended: bool) -> OffsetDateTime {
    if ended {
        last
    } else {
        last - Duration::from_micros(1)
    }
}

/// One poll: every page from the stored cursor until `more` is false.
pub(super) async fn poll(ctx: &Ctx<'_>) -> Result<Polled, Failure> {
    let cfg = ctx.cfg;
    let state = &ctx.state;
    let collection = cfg.collection.as_deref().unwrap_or_default();
    let objects_url = format!("{}collections/{collection}/objects/", dir(&cfg.url));
    let stored = state.cursor.as_deref().and_then(parse_time);
    // A lookback past the calendar's start reads everything.
    let start = stored.or_else(|| {
        cfg.initial_lookback
            .and_then(|lookback| OffsetDateTime::now_utc().checked_sub(lookback.try_into().ok()?))
    });
    let mut added_after = start.map(format_time);
    let mut cursor = stored;
    let mut next: Option<String> = None;
    // A page seen before (the same token and the same objects): a server
    // looping. The token alone is not enough: medallion gives the same one
    // for every page of a poll.
    let mut seen_pages = HashSet::new();
    let mut polled = Polled::default();
    for page in 1..=MAX_PAGES {
        let mut query = vec![("limit", cfg.page_size.to_string())];
        if let Some(a) = &added_after {
            query.push(("added_after", a.clone()));
        }
        if let Some(n) = &next {
            query.push(("next", n.clone()));
        }
        let url = url::Url::parse_with_params(&objects_url, &query)
            .map_err(|e| invalid(format!("the objects URL {objects_url:?}: {e}")))?;
        let resp = ctx.fetcher.get(url.as_str(), accept()).await?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_time)
        };
        let (first, last) = (
            header("X-TAXII-Date-Added-First"),
            header("X-TAXII-Date-Added-Last"),
        );
        let body = ctx.fetcher.body(resp).await?;
        let envelope: Envelope = serde_json::from_slice(&body).map_err(|e| {
            invalid(format!(
                "page {page} of {objects_url} is not a TAXII envelope: {e}"
            ))
        })?;
        // Without the header the cursor cannot move: every poll would read
        // the same objects again, for ever.
        if last.is_none() && !envelope.objects.is_empty() {
            return Err(Failure::from(invalid(format!(
                "page {page} of {objects_url} has objects but no X-TAXII-Date-Added-Last header: \
                 the cursor cannot move (TAXII 2.1 section 5.4)"
            ))));
        }
        let mut advance = write_page(ctx, &envelope.objects, page).await?;
        advance.bytes = body.len() as u64;
        let ended = !envelope.more;
        if let Some(last) = last {
            let after = cursor_after(last, ended);
            if cursor.is_none_or(|c| after > c) {
                cursor = Some(after);
                advance.cursor = Some(format_time(after));
            }
        }
        ctx.advance(&advance).await?;
        polled.add(&advance);
        if ended {
            return Ok(polled);
        }
        if !seen_pages.insert((envelope.next.clone(), body_hash(&body))) {
            return Err(Failure::from(invalid(format!(
                "the server gave the same page twice (next {:?}): poll stopped; without `next`, \
                 a tie of more than page_size objects cannot be paged through",
                envelope.next
            ))));
        }
        (next, added_after) = match envelope.next {
            Some(n) => (Some(n), added_after),
            None => (None, Some(after_page(&cfg.name, first, last)?)),
        };
    }
    Err(Failure::from(invalid(format!(
        "more than {MAX_PAGES} pages in one poll: stopped (the cursor is kept)"
    ))))
}

/// Where the next page starts when the server gives more without a
/// `next` token: just before this page's last object, so the rest of a tie
/// there is read. A page that is one tie from first to last would come back
/// the same: then after it, as the standard says (the rest of a tie longer
/// than page_size is skipped: said in the log).
fn after_page(
    source: &str,
    first: Option<OffsetDateTime>,
    last: Option<OffsetDateTime>,
) -> Result<String, FetchError> {
    let last = last
        .ok_or_else(|| invalid("`more` without `next` or X-TAXII-Date-Added-Last: cannot go on"))?;
    let one_tie = first.is_some_and(|f| f >= last);
    if one_tie {
        tracing::warn!(source, date_added = %format_time(last), "a page of objects all added at one time, and no `next`: objects of that time beyond page_size may be skipped (raise page_size)");
    }
    Ok(format_time(cursor_after(last, one_tie)))
}

/// A page's objects as one STIX bundle file (nothing for an empty page).
async fn write_page(
    ctx: &Ctx<'_>,
    objects: &[Box<RawValue>],
    page: u32,
) -> Result<SourceAdvance, FetchError> {
    if objects.is_empty() {
        return Ok(SourceAdvance::default());
    }
    // The objects as the server sent them, joined: never parsed into a
    // value (a number or escape serde_json's `Value` cannot hold must not
    // stop the poll; the STIX reader judges each object).
    let mut bytes = format!(
        "{{\"type\":\"bundle\",\"id\":\"bundle--{}\",\"objects\":[",
        uuid_v4()
    )
    .into_bytes();
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            bytes.push(b',');
        }
        bytes.extend_from_slice(o.get().as_bytes());
    }
    bytes.extend_from_slice(b"]}");
    ctx.spool
        .write(&bytes, &format!("page-{page:04}.json"))
        .await?;
    Ok(SourceAdvance {
        files: 1,
        objects: objects.len() as u64,
        ..SourceAdvance::default()
    })
}

/// A page's fingerprint, to tell a server that loops.
fn body_hash(body: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(body).into()
}

/// A random version 4 UUID (bundle ids).
fn uuid_v4() -> String {
    let mut b: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// An API root and its collections, as discovery finds them.
#[derive(Debug)]
pub struct ApiRoot {
    pub url: String,
    pub title: Option<String>,
    pub collections: Result<Vec<Collection>, FetchError>,
}

#[derive(Debug, Deserialize)]
pub struct Collection {
    pub id: String,
    pub title: Option<String>,
    #[serde(default)]
    pub can_read: bool,
    #[serde(default)]
    pub can_write: bool,
}

/// `url`'s API roots with their collections: `url` may be a discovery
/// endpoint (`/taxii2/`) or an API root. A root a discovery document
/// names on another host (proxies, containers) is listed as named; if it
/// cannot be reached, the error says so beside it.
///
/// # Errors
/// `url` itself cannot be read.
pub async fn discover(fetcher: &Fetcher, url: &str) -> Result<Vec<ApiRoot>, FetchError> {
    #[derive(Deserialize)]
    struct Discovery {
        api_roots: Vec<String>,
    }
    #[derive(Deserialize)]
    struct RootInfo {
        title: Option<String>,
    }
    #[derive(Deserialize)]
    struct Collections {
        #[serde(default)]
        collections: Vec<Collection>,
    }
    let body = fetcher
        .body(fetcher.get(&dir(url), accept()).await?)
        .await?;
    let roots = match serde_json::from_slice::<Discovery>(&body) {
        Ok(d) => d.api_roots,
        Err(_) => vec![url.to_string()],
    };
    let mut out = Vec::new();
    for root in roots {
        let root = match url::Url::parse(url).and_then(|base| base.join(&root)) {
            Ok(u) => dir(u.as_str()),
            Err(_) => dir(&root),
        };
        let title = match fetcher.get(&root, accept()).await {
            Ok(resp) => fetcher
                .body(resp)
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<RootInfo>(&b).ok())
                .and_then(|r| r.title),
            Err(_) => None,
        };
        let collections = async {
            let resp = fetcher
                .get(&format!("{root}collections/"), accept())
                .await?;
            let body = fetcher.body(resp).await?;
            serde_json::from_slice::<Collections>(&body)
                .map(|c| c.collections)
                .map_err(|e| {
                    invalid(format!(
                        "{root}collections/ is not a TAXII collections list: {e}"
                    ))
                })
        }
        .await;
        out.push(ApiRoot {
            url: root,
            title,
            collections,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_stays_below_a_tie_until_the_poll_ends() {
        let last = parse_time("2026-12-03T10:00:00.000000Z").unwrap();
        assert_eq!(
            format_time(cursor_after(last, false)),
            "2026-12-03T09:59:59.999999Z"
        );
        assert_eq!(
            format_time(cursor_after(last, true)),
            "2026-12-03T10:00:00.000000Z"
        );
        // Millisecond and offset forms are read too.
        assert_eq!(
            format_time(parse_time("2026-12-03T11:00:00.5+01:00").unwrap()),
            "2026-12-03T10:00:00.500000Z"
        );
    }

    #[test]
    fn bundle_ids_are_version_4_uuids() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }
}
