//! Held owners, the pause and the heartbeat the daemon leaves for `status`.

use super::sql::{Dialect, query};
use sqlx::Row;

use super::{ErrorClass, HeldOwner, Pause, Queue, now_ms};

impl Queue {
    /// Holds an owner: its pending jobs wait as `held` and none are claimed.
    ///
    /// # Errors
    /// Database errors.
    pub async fn hold_owner(
        &self,
        owner: &str,
        class: ErrorClass,
        reason: &str,
    ) -> anyhow::Result<bool> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let new = query(
            "INSERT INTO held_owners (owner, class, reason, held_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(owner)
        .bind(class.as_str())
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        query(
            "UPDATE jobs SET state = 'held', updated_at = ? WHERE owner = ? AND state = 'pending'",
        )
        .bind(now)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(new)
    }

    /// Releases a held owner: its jobs are due again now.
    ///
    /// # Errors
    /// Database errors.
    pub async fn release_owner(&self, owner: &str) -> anyhow::Result<u64> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        query("DELETE FROM held_owners WHERE owner = ?")
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        let n = query(
            "UPDATE jobs SET state = 'pending', next_attempt_at = ?, updated_at = ? WHERE owner = ? AND state = 'held'",
        )
        .bind(now)
        .bind(now)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// # Errors
    /// Database errors.
    pub async fn held_owners(&self) -> anyhow::Result<Vec<HeldOwner>> {
        let rows = query("SELECT owner, class, reason, held_at FROM held_owners ORDER BY owner")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| HeldOwner {
                owner: r.get(0),
                class: r
                    .get::<String, _>(1)
                    .parse()
                    .unwrap_or(ErrorClass::Unexpected),
                reason: r.get(2),
                held_at: r.get(3),
            })
            .collect())
    }

    /// Owners with jobs waiting to be delivered (pending, leased or held).
    ///
    /// # Errors
    /// Database errors.
    pub async fn owners_with_work(&self) -> anyhow::Result<Vec<String>> {
        let rows =
            query("SELECT DISTINCT owner FROM jobs WHERE state IN ('pending', 'leased', 'held')")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Records (or clears) why this daemon's delivery is paused. On a
    /// shared queue each daemon records its own (`pause:<daemon id>`), so
    /// one that starts or resumes clears only its own.
    ///
    /// # Errors
    /// Database errors.
    pub async fn set_pause(&self, pause: Option<&Pause>) -> anyhow::Result<()> {
        let key = match self.dialect {
            Dialect::Sqlite => "pause".to_string(),
            Dialect::Postgres => format!("pause:{}", self.member),
        };
        self.set_state(
            &key,
            pause.map(|p| serde_json::to_string(p).expect("pause serializes")),
        )
        .await
    }

    /// Why delivery is paused: on a shared queue, the newest pause of a
    /// daemon that is not gone.
    ///
    /// # Errors
    /// Database errors.
    pub async fn pause(&self) -> anyhow::Result<Option<Pause>> {
        let value = match self.dialect {
            Dialect::Sqlite => self.get_state("pause").await?,
            Dialect::Postgres => self.live_pause().await?,
        };
        Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
    }

    /// Writes the daemon's heartbeat (a JSON object) for `status`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn heartbeat(&self, value: &serde_json::Value) -> anyhow::Result<()> {
        self.set_state("heartbeat", Some(value.to_string())).await
    }

    pub(super) async fn set_state(&self, key: &str, value: Option<String>) -> anyhow::Result<()> {
        match value {
            Some(v) => {
                query(
                    "INSERT INTO daemon_state (key, value, updated_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (key) DO UPDATE SET value = ?2, updated_at = ?3",
                )
                .bind(key)
                .bind(v)
                .bind(now_ms())
                .execute(&mut *self.writer().await?)
                .await?;
            }
            None => {
                query("DELETE FROM daemon_state WHERE key = ?")
                    .bind(key)
                    .execute(&mut *self.writer().await?)
                    .await?;
            }
        }
        Ok(())
    }

    pub(super) async fn get_state(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(query("SELECT value FROM daemon_state WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get(0)))
    }
}
