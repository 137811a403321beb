//! The status page's reads: cheap enough to run every few seconds on a
//! queue of millions (counts through the partial indexes, the newest few
//! rejects and dead letters, deliveries per hour from `delivery_hours`).

use super::sql::query;
use sqlx::Row;

use super::{ErrorClass, Queue, Stats, now_ms};

/// An hour in ms.
const HOUR: i64 = 3_600_000;

/// A dead letter as the page lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub action: String,
    pub owner: String,
    pub kind: String,
    pub value: String,
    pub class: Option<ErrorClass>,
    pub message: Option<String>,
    pub file: Option<String>,
    pub line: Option<u64>,
    /// Unix ms.
    pub buried_at: i64,
}

/// A reject as the page lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecentReject {
    pub file: String,
    pub line: u64,
    pub rule: String,
    pub reason: String,
}

impl Queue {
    /// What `status` counts, from the partial indexes only: jobs by state
    /// (delivered: in the last hour), dead ones by class, held owners, the
    /// pause, batch jobs, the heartbeat. No count by owner or type, no
    /// files: those read every job.
    ///
    /// # Errors
    /// Database errors.
    pub async fn page_stats(&self) -> anyhow::Result<Stats> {
        let now = now_ms();
        let counts = self.state_counts(now - HOUR).await?;
        let mut s = Stats {
            by_state: counts.by_state(),
            delivered_last_hour: counts.delivered_since,
            ..Stats::default()
        };
        s.delivered_last_minute = query("SELECT COUNT(*) FROM jobs WHERE delivered_at >= ?")
            .bind(now - 60_000)
            .fetch_one(&self.pool)
            .await?
            .get::<i64, _>(0) as u64;
        for r in query(
            "SELECT COALESCE(last_error_class, 'unknown'), COUNT(*) FROM jobs WHERE state = 'dead' GROUP BY 1",
        )
        .fetch_all(&self.pool)
        .await?
        {
            s.dead_by_class.insert(r.get(0), r.get::<i64, _>(1) as u64);
        }
        s.held_owners = self.held_owners().await?;
        s.pause = self.pause().await?;
        s.batches = self.open_batches().await?;
        s.heartbeat = self
            .get_state("heartbeat")
            .await?
            .and_then(|v| serde_json::from_str(&v).ok());
        Ok(s)
    }

    /// Adds the jobs delivered since the last count (its time kept in the
    /// queue, so that whichever daemon counts next goes on from it) up to
    /// `to` (Unix ms) to the hour of `to`, and forgets hours older than two
    /// days. The first count only starts the clock.
    ///
    /// # Errors
    /// Database errors.
    pub async fn count_deliveries(&self, to: i64) -> anyhow::Result<()> {
        const KEY: &str = "deliveries_counted_to";
        let from = self
            .get_state(KEY)
            .await?
            .and_then(|v| v.parse::<i64>().ok());
        self.set_state(KEY, Some(to.to_string())).await?;
        let Some(from) = from.filter(|f| *f < to) else {
            return Ok(());
        };
        let n: i64 =
            query("SELECT COUNT(*) FROM jobs WHERE delivered_at >= ? AND delivered_at < ?")
                .bind(from)
                .bind(to)
                .fetch_one(&self.pool)
                .await?
                .get(0);
        let mut tx = self.begin_write().await?;
        if n > 0 {
            query(
                "INSERT INTO delivery_hours (hour, delivered) VALUES (?, ?) \
                 ON CONFLICT (hour) DO UPDATE SET delivered = delivery_hours.delivered + excluded.delivered",
            )
            .bind(to / HOUR)
            .bind(n)
            .execute(&mut *tx)
            .await?;
        }
        query("DELETE FROM delivery_hours WHERE hour < ?")
            .bind(to / HOUR - 48)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deliveries in each of the last `hours` hours up to `now`, oldest
    /// first (the current hour last).
    ///
    /// # Errors
    /// Database errors.
    pub async fn delivery_history(&self, now: i64, hours: i64) -> anyhow::Result<Vec<u64>> {
        let last = now / HOUR;
        let mut out = vec![0; usize::try_from(hours).unwrap_or(0)];
        for r in query("SELECT hour, delivered FROM delivery_hours WHERE hour > ? AND hour <= ?")
            .bind(last - hours)
            .bind(last)
            .fetch_all(&self.pool)
            .await?
        {
            let at = (r.get::<i64, _>(0) - (last - hours) - 1) as usize;
            if let Some(slot) = out.get_mut(at) {
                *slot = r.get::<i64, _>(1) as u64;
            }
        }
        Ok(out)
    }

    /// `bench page`: every `delivered_every`th job delivered now, every
    /// `dead_every`th (offset by one) buried, the deliveries counted.
    ///
    /// # Errors
    /// Database errors.
    pub async fn bench_settle_jobs(
        &self,
        delivered_every: i64,
        dead_every: i64,
    ) -> anyhow::Result<()> {
        let now = now_ms();
        query("UPDATE jobs SET state = 'delivered', delivered_at = ? WHERE id % ? = 0")
            .bind(now)
            .bind(delivered_every)
            .execute(&mut *self.writer().await?)
            .await?;
        query(
            "UPDATE jobs SET state = 'dead', last_error_class = 'validation', \
             last_error = 'Please enter a valid Host' WHERE id % ? = 1",
        )
        .bind(dead_every)
        .execute(&mut *self.writer().await?)
        .await?;
        self.set_state("deliveries_counted_to", Some((now - HOUR).to_string()))
            .await?;
        self.count_deliveries(now + 1).await
    }

    /// The newest `limit` dead letters.
    ///
    /// # Errors
    /// Database errors.
    pub async fn latest_dead(&self, limit: u32) -> anyhow::Result<Vec<DeadLetter>> {
        let rows = query(
            "SELECT j.id, j.action, j.owner, j.type, j.value, j.last_error_class, j.last_error, \
             f.path, j.source_line, j.updated_at FROM jobs j LEFT JOIN files f ON f.id = j.file_id \
             WHERE j.state = 'dead' ORDER BY j.updated_at DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| DeadLetter {
                id: r.get(0),
                action: r.get(1),
                owner: r.get(2),
                kind: r.get(3),
                value: r.get(4),
                class: r.get::<Option<String>, _>(5).and_then(|c| c.parse().ok()),
                message: r.get(6),
                file: r.get(7),
                line: r.get::<Option<i64>, _>(8).map(|l| l as u64),
                buried_at: r.get(9),
            })
            .collect())
    }

    /// The newest `limit` rejects, with their files.
    ///
    /// # Errors
    /// Database errors.
    pub async fn latest_rejects(&self, limit: u32) -> anyhow::Result<Vec<RecentReject>> {
        let rows = query(
            "SELECT f.path, r.line, r.rule, r.reason FROM rejects r JOIN files f ON f.id = r.file_id \
             ORDER BY r.id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| RecentReject {
                file: r.get(0),
                line: r.get::<i64, _>(1) as u64,
                rule: r.get(2),
                reason: r.get(3),
            })
            .collect())
    }
}
