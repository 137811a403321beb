//! Pull sources' state: cursors and validators, health, and a MISP feed's
//! events. Advanced only after what a fetch wrote is durable.

use super::sql::{DbRow, query};
use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;

use super::{Queue, now_ms};

/// The role of polling the source `name`: on a shared queue one daemon
/// at a time holds it.
pub fn source_role(name: &str) -> String {
    format!("source:{name}")
}

/// One source as the queue holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceState {
    pub name: String,
    pub kind: String,
    /// A TAXII source's next `added_after`.
    pub cursor: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub content_sha256: Option<String>,
    pub last_attempt_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_class: Option<String>,
    pub consecutive_failures: u32,
    /// When a fetch last brought something new.
    pub newest_data_at: Option<i64>,
    pub files_fetched: u64,
    pub objects_fetched: u64,
    pub bytes_fetched: u64,
    pub created_at: i64,
    /// A MISP feed's events that left its manifest.
    pub events_removed: u64,
}

/// What one durable step of a fetch changes.
#[derive(Debug, Clone, Default)]
pub struct SourceAdvance {
    /// The new cursor, when it moves.
    pub cursor: Option<String>,
    /// A document's validators, when one was written or found unchanged.
    pub validators: Option<Validators>,
    /// A MISP event written, with its manifest timestamp.
    pub event: Option<(String, i64)>,
    pub files: u64,
    pub objects: u64,
    pub bytes: u64,
}

/// An HTTP document's `ETag`, `Last-Modified` and sha256.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub sha256: Option<String>,
}

/// `SELECT` of every column, in [`state`]'s order.
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT name, kind, cursor, etag, last_modified, content_sha256, last_attempt_at, \
             last_success_at, last_error, last_error_class, consecutive_failures, \
             newest_data_at, files_fetched, objects_fetched, bytes_fetched, created_at, \
             (SELECT COUNT(*) FROM source_events e WHERE e.source = sources.name \
             AND e.removed_at IS NOT NULL) FROM sources ",
            $rest
        )
    };
}

fn state(r: &DbRow) -> SourceState {
    SourceState {
        name: r.get(0),
        kind: r.get(1),
        cursor: r.get(2),
        etag: r.get(3),
        last_modified: r.get(4),
        content_sha256: r.get(5),
        last_attempt_at: r.get(6),
        last_success_at: r.get(7),
        last_error: r.get(8),
        last_error_class: r.get(9),
        consecutive_failures: u32::try_from(r.get::<i64, _>(10)).unwrap_or(0),
        newest_data_at: r.get(11),
        files_fetched: u64::try_from(r.get::<i64, _>(12)).unwrap_or(0),
        objects_fetched: u64::try_from(r.get::<i64, _>(13)).unwrap_or(0),
        bytes_fetched: u64::try_from(r.get::<i64, _>(14)).unwrap_or(0),
        created_at: r.get(15),
        events_removed: u64::try_from(r.get::<i64, _>(16)).unwrap_or(0),
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Queue {
    /// The source's state, created empty on first use. A source whose kind
    /// or origin (`url`, and a TAXII collection) changed starts over: a
    /// cursor or ETag means nothing elsewhere.
    ///
    /// # Errors
    /// Database errors.
    pub async fn source_open(
        &self,
        name: &str,
        kind: &str,
        origin: &str,
    ) -> anyhow::Result<SourceState> {
        let mut tx = self.begin_write().await?;
        query(
            "INSERT INTO sources (name, kind, origin, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, origin = excluded.origin, \
             cursor = NULL, etag = NULL, last_modified = NULL, content_sha256 = NULL \
             WHERE sources.kind <> excluded.kind OR sources.origin <> excluded.origin",
        )
        .bind(name)
        .bind(kind)
        .bind(origin)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let row = query(select!("WHERE name = ?"))
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(state(&row))
    }

    /// A source's state as it stands (after [`Queue::source_open`]).
    ///
    /// # Errors
    /// Database errors, or no such source.
    pub async fn source_state(&self, name: &str) -> anyhow::Result<SourceState> {
        let row = query(select!("WHERE name = ?"))
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(state(&row))
    }

    /// Every source the queue knows, by name (sources removed from the
    /// config included: their state is kept for when they come back).
    ///
    /// # Errors
    /// Database errors.
    pub async fn source_states(&self) -> anyhow::Result<Vec<SourceState>> {
        let rows = query(select!("ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(state).collect())
    }

    /// Records one durable step of a fetch: the cursor or validators move,
    /// counters grow, and anything new marks the source as fresh. Fenced
    /// by the source's role: a daemon that stalled while another took the
    /// source over writes nothing.
    ///
    /// # Errors
    /// [`super::Superseded`], or database errors.
    pub async fn source_advance(&self, name: &str, a: &SourceAdvance) -> anyhow::Result<()> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        self.fence_role(&mut tx, &source_role(name)).await?;
        let (etag, last_modified, sha) = a.validators.as_ref().map_or((None, None, None), |v| {
            (
                v.etag.as_deref(),
                v.last_modified.as_deref(),
                v.sha256.as_deref(),
            )
        });
        query(
            "UPDATE sources SET cursor = COALESCE(?, cursor), \
             etag = CASE WHEN ? THEN ? ELSE etag END, \
             last_modified = CASE WHEN ? THEN ? ELSE last_modified END, \
             content_sha256 = CASE WHEN ? THEN ? ELSE content_sha256 END, \
             files_fetched = files_fetched + ?, objects_fetched = objects_fetched + ?, \
             bytes_fetched = bytes_fetched + ?, \
             newest_data_at = CASE WHEN ? > 0 THEN ? ELSE newest_data_at END WHERE name = ?",
        )
        .bind(a.cursor.as_deref())
        .bind(a.validators.is_some())
        .bind(etag)
        .bind(a.validators.is_some())
        .bind(last_modified)
        .bind(a.validators.is_some())
        .bind(sha)
        .bind(count(a.files))
        .bind(count(a.objects))
        .bind(count(a.bytes))
        .bind(count(a.files))
        .bind(now)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        if let Some((uuid, ts)) = &a.event {
            query(
                "INSERT INTO source_events (source, uuid, timestamp) VALUES (?, ?, ?) \
                 ON CONFLICT (source, uuid) DO UPDATE SET timestamp = excluded.timestamp, \
                 removed_at = NULL",
            )
            .bind(name)
            .bind(uuid)
            .bind(ts)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records how a poll ended: a success clears the error and the
    /// failure count, a failure keeps its class and message.
    ///
    /// # Errors
    /// Database errors.
    pub async fn source_polled(
        &self,
        name: &str,
        failure: Option<(&str, &str)>,
    ) -> anyhow::Result<()> {
        let now = now_ms();
        let q = match failure {
            None => query(
                "UPDATE sources SET last_attempt_at = ?, last_success_at = ?, last_error = NULL, \
                 last_error_class = NULL, consecutive_failures = 0 WHERE name = ?",
            )
            .bind(now)
            .bind(now)
            .bind(name),
            Some((class, message)) => query(
                "UPDATE sources SET last_attempt_at = ?, last_error = ?, last_error_class = ?, \
                 consecutive_failures = consecutive_failures + 1 WHERE name = ?",
            )
            .bind(now)
            .bind(message)
            .bind(class)
            .bind(name),
        };
        let mut tx = self.begin_write().await?;
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A MISP feed's events still in its manifest, with the timestamp of
    /// the version written.
    ///
    /// # Errors
    /// Database errors.
    pub async fn source_events(&self, name: &str) -> anyhow::Result<HashMap<String, i64>> {
        let rows = query(
            "SELECT uuid, timestamp FROM source_events WHERE source = ? AND removed_at IS NULL",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Marks events that left a MISP feed's manifest as removed.
    ///
    /// # Errors
    /// Database errors.
    pub async fn source_events_removed(&self, name: &str, uuids: &[String]) -> anyhow::Result<()> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        for uuid in uuids {
            query("UPDATE source_events SET removed_at = ? WHERE source = ? AND uuid = ?")
                .bind(now)
                .bind(name)
                .bind(uuid)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

crate::names::named_enum! {
    /// A source's health, as `sources` and `status` show it.
    pub enum SourceHealth ("source health") {
        Ok => "ok",
        /// Nothing new within `stale_after` (or never anything).
        Stale => "STALE",
        /// The last poll failed.
        Failing => "FAILING",
    }
}

impl SourceState {
    /// Failing when its last poll failed; else stale when nothing new
    /// arrived within `stale_after` of `now` (counted from its first
    /// poll before anything arrived).
    pub fn health(&self, stale_after: std::time::Duration, now: i64) -> SourceHealth {
        if self.consecutive_failures > 0 {
            return SourceHealth::Failing;
        }
        let since = self.newest_data_at.unwrap_or(self.created_at);
        let limit = i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX);
        if now.saturating_sub(since) > limit {
            SourceHealth::Stale
        } else {
            SourceHealth::Ok
        }
    }
}
