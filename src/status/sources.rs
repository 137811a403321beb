//! Pull sources in `status` and `tc-ingest sources`: per source its kind,
//! health (`STALE` when nothing new arrived within `stale_after`,
//! `FAILING` when the last poll failed), last success, last error with its
//! class, consecutive failures, cursor, and what it fetched.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::{StatusView, iso};
use crate::queue::{SourceHealth, SourceState};

/// A source as the queue holds it, with its configured `stale_after`
/// (`None`: no longer in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceView {
    pub state: SourceState,
    pub stale_after: Option<Duration>,
}

impl SourceView {
    pub fn health(&self, now: i64) -> Option<SourceHealth> {
        self.stale_after.map(|s| self.state.health(s, now))
    }
}

/// The sources the queue holds (their limits come from the config).
pub(super) async fn read(queue: &crate::queue::Queue) -> anyhow::Result<Vec<SourceView>> {
    Ok(queue
        .source_states()
        .await?
        .into_iter()
        .map(|state| SourceView {
            state,
            stale_after: None,
        })
        .collect())
}

impl StatusView {
    /// The configured sources' `stale_after` (name, limit): their health
    /// can be told; one never polled is listed too.
    #[must_use]
    pub fn with_sources(mut self, configured: &[(String, Duration)]) -> Self {
        for (name, stale_after) in configured {
            match self.sources.iter_mut().find(|s| &s.state.name == name) {
                Some(s) => s.stale_after = Some(*stale_after),
                None => self.sources.push(SourceView {
                    state: SourceState {
                        name: name.clone(),
                        kind: "-".into(),
                        created_at: self.at,
                        ..SourceState::default()
                    },
                    stale_after: Some(*stale_after),
                }),
            }
        }
        self.sources.sort_by(|a, b| a.state.name.cmp(&b.state.name));
        self
    }
}

/// The sources' part of the JSON form.
pub(super) fn json(v: &StatusView) -> Value {
    v.sources
        .iter()
        .map(|s| {
            let st = &s.state;
            json!({
                "name": st.name,
                "kind": st.kind,
                "configured": s.stale_after.is_some(),
                "health": s.health(v.at).map(|h| h.as_str().to_ascii_lowercase()),
                "last_attempt": st.last_attempt_at.map(iso),
                "last_success": st.last_success_at.map(iso),
                "last_error": st.last_error,
                "last_error_class": st.last_error_class,
                "consecutive_failures": st.consecutive_failures,
                "cursor": st.cursor,
                "newest_data": st.newest_data_at.map(iso),
                "files_fetched": st.files_fetched,
                "objects_fetched": st.objects_fetched,
                "bytes_fetched": st.bytes_fetched,
                "events_removed": st.events_removed,
            })
        })
        .collect()
}

/// The sources' section of the status table (nothing when there are
/// none).
pub(super) fn section(o: &mut String, v: &StatusView) {
    if v.sources.is_empty() {
        return;
    }
    let _ = writeln!(o, "\npull sources:");
    o.push_str(&table(v));
}

/// A line or two per source.
pub fn table(v: &StatusView) -> String {
    let mut o = String::new();
    if v.sources.is_empty() {
        o.push_str("  no pull sources ([[sources]] in the config)\n");
    }
    for s in &v.sources {
        let st = &s.state;
        let health = match s.health(v.at) {
            Some(h) => h.as_str(),
            None => "not configured",
        };
        let last = match (st.last_success_at, st.last_attempt_at) {
            (Some(ok), _) => format!("last success {} ago", v.since(ok)),
            (None, Some(_)) => "never succeeded".to_string(),
            (None, None) => "never polled".to_string(),
        };
        let _ = writeln!(
            o,
            "  {:<24} {:<5} {:<14} {last}; {} files, {} objects, {} bytes fetched",
            st.name, st.kind, health, st.files_fetched, st.objects_fetched, st.bytes_fetched
        );
        if let Some(at) = st.newest_data_at {
            let _ = writeln!(o, "      newest data {} ago", v.since(at));
        }
        if st.events_removed > 0 {
            let _ = writeln!(
                o,
                "      {} events left the feed's manifest",
                st.events_removed
            );
        }
        if let Some(cursor) = &st.cursor {
            let _ = writeln!(o, "      cursor (added_after) {cursor}");
        }
        if let (Some(err), Some(class)) = (&st.last_error, &st.last_error_class)
            && st.consecutive_failures > 0
        {
            let _ = writeln!(
                o,
                "      last error [{class}], {} in a row: {err}",
                st.consecutive_failures
            );
        }
    }
    o
}
