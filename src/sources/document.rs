//! `kind = "http"`: one document fetched with a conditional GET. A 304, or
//! the same bytes again (sha256), writes nothing; anything else becomes
//! one file named after the URL's last segment, so that detection by
//! extension works as for dropped files (a `.gz` body stays compressed:
//! intake reads gzip by its magic bytes).

use reqwest::header::{
    ETAG, HeaderMap, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};

use super::spool::safe_suffix;
use super::{Ctx, Failure, Polled};
use crate::queue::{SourceAdvance, Validators};

pub(super) async fn poll(ctx: &Ctx<'_>) -> Result<Polled, Failure> {
    let state = &ctx.state;
    let mut headers = HeaderMap::new();
    let header = |v: &Option<String>| v.as_deref().and_then(|v| HeaderValue::from_str(v).ok());
    if let Some(v) = header(&state.etag) {
        headers.insert(IF_NONE_MATCH, v);
    }
    if let Some(v) = header(&state.last_modified) {
        headers.insert(IF_MODIFIED_SINCE, v);
    }
    let resp = ctx.fetcher.get(&ctx.cfg.url, headers).await?;
    if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Polled::unchanged());
    }
    let text = |name| {
        resp.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let (etag, last_modified) = (text(ETAG), text(LAST_MODIFIED));
    let suffix = safe_suffix(
        resp.url().path_segments().and_then(|mut s| s.next_back()),
        "document",
    );
    let mut temp = ctx.spool.temp()?;
    let (bytes, sha256) = ctx.fetcher.body_to(resp, temp.as_file_mut()).await?;
    let unchanged = state.content_sha256.as_deref() == Some(sha256.as_str());
    let mut advance = SourceAdvance {
        validators: Some(Validators {
            etag,
            last_modified,
            sha256: Some(sha256),
        }),
        bytes,
        ..SourceAdvance::default()
    };
    if !unchanged {
        ctx.spool.persist(temp, &suffix).await?;
        advance.files = 1;
    }
    ctx.advance(&advance).await?;
    let mut polled = Polled::default();
    polled.add(&advance);
    polled.unchanged = unchanged;
    Ok(polled)
}
