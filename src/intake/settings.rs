//! How one file is read and queued: the first feed rule matching it over
//! the config's defaults, and what its named feed's lifecycle asks.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::FeedLifecycle;
use crate::feed::ReadOptions;
use crate::lifecycle::Allowlist;
use crate::normalize::FeedDefaults;
use crate::queue::{FeedEnd, Retiring};

/// How to read and queue one file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Owner of rows that name none.
    pub owner: String,
    pub defaults: FeedDefaults,
    pub read: ReadOptions,
    pub dedup_window: Duration,
    /// What never becomes an indicator.
    pub allowlist: Arc<Allowlist>,
    /// The named feed the file is read for (its rule's `name`).
    pub feed: Option<String>,
    /// The file is its feed's whole current list.
    pub snapshot: bool,
    /// How the feed's indicators end (the defaults without a rule).
    pub lifecycle: FeedLifecycle,
}

impl Settings {
    /// How the file's feed retires.
    pub fn retiring(&self) -> Retiring<'_> {
        crate::lifecycle::retiring_by(&self.lifecycle)
    }

    /// What the file's end does to its named feed, if it has one.
    pub fn feed_end(&self) -> Option<FeedEnd<'_>> {
        Some(FeedEnd {
            feed: self.feed.as_deref()?,
            snapshot: self.snapshot,
            retiring: self.retiring(),
            max_retire_fraction: self.lifecycle.max_retire_fraction,
            max_reject_fraction: self.lifecycle.max_reject_fraction,
        })
    }
}

impl Settings {
    /// The settings for a file at `rel` (relative to `watch.dir`): the first
    /// feed rule that matches, over `api.owner`. `owner` and `kind` (from the
    /// `enqueue` command line) win over both.
    pub fn for_file(
        cfg: &crate::config::Config,
        rel: &Path,
        owner: Option<&str>,
        kind: Option<crate::indicator::IndicatorType>,
    ) -> Self {
        let rule = cfg.feeds.iter().find(|r| r.matches(rel));
        Self {
            owner: owner
                .map(str::to_string)
                .or_else(|| rule.and_then(|r| r.owner.clone()))
                .unwrap_or_else(|| cfg.api.owner.clone()),
            defaults: FeedDefaults {
                kind: kind.or_else(|| rule.and_then(|r| r.kind)),
                tags: rule.map(|r| r.tags.clone()).unwrap_or_default(),
                rating: rule.and_then(|r| r.rating),
                confidence: rule.and_then(|r| r.confidence),
                security_labels: rule.map(|r| r.security_labels.clone()).unwrap_or_default(),
                tlp_names: cfg.security_labels.clone(),
            },
            read: ReadOptions {
                max_line_bytes: cfg.watch.max_line_bytes,
                max_decompressed_bytes: cfg.watch.max_decompressed_bytes,
                columns: rule.map(|r| r.columns.clone()).unwrap_or_default(),
                format: rule.and_then(|r| r.format),
                stix_observables: rule.is_some_and(|r| r.stix_observables),
                misp_all_attributes: rule.is_some_and(|r| r.misp_all_attributes),
                comments: rule.map(|r| r.comments.clone()).unwrap_or_default(),
                trailing: rule.and_then(|r| r.trailing),
                header: rule.is_none_or(|r| r.header),
                header_in_comment: rule.is_some_and(|r| r.header_in_comment),
                delimiter: rule.and_then(|r| r.delimiter),
                line_key: rule.and_then(|r| r.line_key.clone()),
            },
            dedup_window: cfg.queue.dedup_window,
            allowlist: Arc::new(Allowlist::empty()),
            feed: rule.and_then(|r| r.name.clone()),
            snapshot: rule.is_some_and(|r| r.snapshot),
            lifecycle: rule.map(|r| r.lifecycle.clone()).unwrap_or_default(),
        }
    }
}
