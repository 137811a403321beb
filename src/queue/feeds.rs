//! Named feeds' state for `status`, metrics and the sweeps: what each
//! holds, a held snapshot, its files' counts per owner, its health.

use super::sql::{DbRow, query};
use sqlx::Row;

use super::{HeldSnapshot, Queue, now_ms};

/// A named feed's lifecycle state and health, for `status` and `retire`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FeedState {
    pub name: String,
    /// Unix ms: when the feed was first configured or read.
    pub created_at: i64,
    /// Indicators it holds, as last counted (at the end of each of its
    /// files, and by the daemon every minute).
    pub members: u64,
    /// Indicators the last snapshot reconciled held.
    pub snapshot_size: Option<u64>,
    pub held: Option<HeldSnapshot>,
    /// Unix ms: when its newest file read whole finished.
    pub last_file_at: Option<i64>,
    /// Its files' counts per owner.
    pub owners: Vec<FeedOwner>,
}

/// A named feed's counts for one owner.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FeedOwner {
    pub owner: String,
    pub files: u64,
    pub rows: u64,
    pub new: u64,
    pub duplicate: u64,
    pub filtered: u64,
    pub rejected: u64,
    /// Indicators the feed retired that no feed brought back.
    pub retired: u64,
    /// Unix ms.
    pub last_file_at: Option<i64>,
}

crate::names::named_enum! {
    /// Whether a named feed is flowing (`stale_after`).
    pub enum FeedHealth ("feed health") {
        Ok => "OK",
        /// No file within `stale_after`.
        Stale => "STALE",
    }
}

impl FeedState {
    /// STALE when no file came within `stale_after` (counted from the
    /// feed's first appearance while it has had none).
    pub fn health(&self, stale_after: std::time::Duration, now: i64) -> FeedHealth {
        let since = self.last_file_at.unwrap_or(self.created_at);
        if now - since > super::ms(stale_after) {
            FeedHealth::Stale
        } else {
            FeedHealth::Ok
        }
    }

    /// Retired in all, over its owners.
    pub fn retired(&self) -> u64 {
        self.owners.iter().map(|o| o.retired).sum()
    }
}

impl Queue {
    /// Records which named feeds the config has (at start and after a
    /// reload): a new one's health counts from now until its first file,
    /// and the members of one no longer configured keep no indicator from
    /// being retired.
    ///
    /// # Errors
    /// Database errors.
    pub async fn declare_feeds(&self, names: &[&str]) -> anyhow::Result<()> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        query("UPDATE feeds SET configured = 0")
            .execute(&mut *tx)
            .await?;
        for name in names {
            query(
                "INSERT INTO feeds (name, created_at, updated_at) VALUES (?1, ?2, ?2) \
                 ON CONFLICT (name) DO UPDATE SET configured = 1",
            )
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Counts what each named feed holds (`feeds.members`, which
    /// [`Queue::feed_states`] reports): `feed`'s, or every feed's.
    ///
    /// # Errors
    /// Database errors.
    pub async fn count_members(&self, feed: Option<&str>) -> anyhow::Result<()> {
        // Counted by a read (millions of members take a while), written
        // in one short transaction: delivery's writes never wait on the count.
        let counts: Vec<(String, i64)> = query(
            "SELECT f.name, (SELECT COUNT(*) FROM feed_members m WHERE m.feed = f.name) \
             FROM feeds f WHERE ?1 IS NULL OR f.name = ?1",
        )
        .bind(feed)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
        let mut tx = self.begin_write().await?;
        for (name, n) in counts {
            query("UPDATE feeds SET members = ? WHERE name = ?")
                .bind(n)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every named feed's lifecycle state and counts, by name (what each
    /// holds as last counted: [`Queue::count_members`]).
    ///
    /// # Errors
    /// Database errors.
    pub async fn feed_states(&self) -> anyhow::Result<Vec<FeedState>> {
        let rows = query(
            "SELECT f.name, f.created_at, f.snapshot_size, f.held_file, f.held_reason, \
             f.held_retire, f.held_at, f.members \
             FROM feeds f ORDER BY f.name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut feeds: Vec<FeedState> = rows
            .iter()
            .map(|r| FeedState {
                name: r.get(0),
                created_at: r.get(1),
                snapshot_size: r.get::<Option<i64>, _>(2).map(|n| n as u64),
                held: r.get::<Option<i64>, _>(3).map(|file_id| HeldSnapshot {
                    file_id,
                    reason: r.get::<Option<String>, _>(4).unwrap_or_default(),
                    would_retire: r.get::<Option<i64>, _>(5).unwrap_or(0) as u64,
                    held_at: r.get::<Option<i64>, _>(6).unwrap_or(0),
                }),
                members: r.get::<i64, _>(7) as u64,
                ..FeedState::default()
            })
            .collect();
        let counts = query(
            "SELECT feed, owner, COUNT(*), CAST(SUM(rows_read) AS BIGINT), \
             CAST(SUM(rows_queued) AS BIGINT), CAST(SUM(rows_duplicate) AS BIGINT), \
             CAST(SUM(rows_filtered) AS BIGINT), CAST(SUM(rows_rejected) AS BIGINT), \
             MAX(CASE WHEN state = 'done' THEN finished_at END) \
             FROM files WHERE feed IS NOT NULL GROUP BY feed, owner",
        )
        .fetch_all(&self.pool)
        .await?;
        let retired = query(
            "SELECT feed, owner, COUNT(*) FROM retired WHERE feed IS NOT NULL GROUP BY feed, owner",
        )
        .fetch_all(&self.pool)
        .await?;
        let n = |r: &DbRow, i: usize| r.get::<Option<i64>, _>(i).unwrap_or(0) as u64;
        for f in &mut feeds {
            for r in counts.iter().filter(|r| r.get::<&str, _>(0) == f.name) {
                f.owners.push(FeedOwner {
                    owner: r.get(1),
                    files: n(r, 2),
                    rows: n(r, 3),
                    new: n(r, 4),
                    duplicate: n(r, 5),
                    filtered: n(r, 6),
                    rejected: n(r, 7),
                    retired: 0,
                    last_file_at: r.get(8),
                });
            }
            for r in retired.iter().filter(|r| r.get::<&str, _>(0) == f.name) {
                let owner: String = r.get(1);
                let count = n(r, 2);
                match f.owners.iter_mut().find(|o| o.owner == owner) {
                    Some(o) => o.retired = count,
                    None => f.owners.push(FeedOwner {
                        owner,
                        retired: count,
                        ..FeedOwner::default()
                    }),
                }
            }
            f.last_file_at = f.owners.iter().filter_map(|o| o.last_file_at).max();
        }
        Ok(feeds)
    }
}
