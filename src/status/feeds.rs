//! Named feeds in `status`: per feed its health (`STALE` when no file came
//! within its `stale_after`), last file, what it holds, a snapshot held for
//! `retire --confirm`, and per owner its files and rows (new, duplicate,
//! filtered, rejected) and what it retired.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::{StatusView, iso};
use crate::queue::{FeedHealth, FeedState};

/// A named feed as the queue holds it, with its configured `stale_after`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedView {
    pub state: FeedState,
    pub stale_after: Option<Duration>,
    /// Still a feed rule's (or source's) name in the config.
    pub configured: bool,
}

impl FeedView {
    pub fn health(&self, now: i64) -> Option<FeedHealth> {
        self.stale_after.map(|s| self.state.health(s, now))
    }
}

/// The named feeds the queue holds (their limits come from the config).
pub(super) async fn read(queue: &crate::queue::Queue) -> anyhow::Result<Vec<FeedView>> {
    Ok(queue
        .feed_states()
        .await?
        .into_iter()
        .map(|state| FeedView {
            state,
            stale_after: None,
            configured: false,
        })
        .collect())
}

impl StatusView {
    /// The configured named feeds and their `stale_after`: their health can
    /// be told; one that never had a file is listed too.
    #[must_use]
    pub fn with_feeds(mut self, configured: &[(String, Option<Duration>)]) -> Self {
        for (name, stale_after) in configured {
            let view = match self.feeds.iter_mut().find(|f| &f.state.name == name) {
                Some(f) => f,
                None => {
                    self.feeds.push(FeedView {
                        state: FeedState {
                            name: name.clone(),
                            created_at: self.at,
                            ..FeedState::default()
                        },
                        stale_after: None,
                        configured: true,
                    });
                    self.feeds.last_mut().expect("just pushed")
                }
            };
            view.stale_after = *stale_after;
            view.configured = true;
        }
        self.feeds.sort_by(|a, b| a.state.name.cmp(&b.state.name));
        self
    }
}

/// The feeds' part of the JSON form.
pub(super) fn json(v: &StatusView) -> Value {
    v.feeds
        .iter()
        .map(|f| {
            let st = &f.state;
            json!({
                "name": st.name,
                "configured": f.configured,
                "health": f.health(v.at).map(|h| h.as_str().to_ascii_lowercase()),
                "last_file": st.last_file_at.map(iso),
                "members": st.members,
                "snapshot_size": st.snapshot_size,
                "retired": st.retired(),
                "held": st.held.as_ref().map(|h| json!({
                    "file_id": h.file_id, "reason": h.reason,
                    "would_retire": h.would_retire, "since": iso(h.held_at),
                })),
                "owners": st.owners.iter().map(|o| json!({
                    "owner": o.owner, "files": o.files, "rows": o.rows, "new": o.new,
                    "duplicate": o.duplicate, "filtered": o.filtered, "rejected": o.rejected,
                    "retired": o.retired, "last_file": o.last_file_at.map(iso),
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// The feeds' section of the status table (nothing when none is named).
pub(super) fn section(o: &mut String, v: &StatusView) {
    if v.feeds.is_empty() {
        return;
    }
    let _ = writeln!(o, "\nfeeds:");
    for f in &v.feeds {
        let st = &f.state;
        let health = match f.health(v.at) {
            Some(h) => h.as_str(),
            None if f.configured => "-",
            None => "not configured",
        };
        let last = st.last_file_at.map_or_else(
            || "no file yet".to_string(),
            |at| format!("last file {} ago", v.since(at)),
        );
        let _ = writeln!(
            o,
            "  {:<24} {:<14} {last}; holds {}, retired {}",
            st.name,
            health,
            st.members,
            st.retired()
        );
        if let Some(h) = &st.held {
            let _ = writeln!(
                o,
                "      SNAPSHOT HELD since {}: {}; would retire {} (`tc-ingest retire --feed {} --dry-run`, then `--confirm`)",
                iso(h.held_at),
                h.reason,
                h.would_retire,
                st.name
            );
        }
        for w in &st.owners {
            let _ = writeln!(
                o,
                "      {}: {} files, {} rows: {} new, {} duplicate, {} filtered, {} rejected; {} retired",
                w.owner, w.files, w.rows, w.new, w.duplicate, w.filtered, w.rejected, w.retired
            );
        }
    }
}
