//! The daemons on a queue: their heartbeats (`daemons`) and the work only
//! one of them does at a time (`roles`). Times here are the database's
//! clock, so that daemons on hosts whose clocks differ judge each other's
//! heartbeats and roles by one clock.

use anyhow::Context;
use sqlx::{AssertSqlSafe, Row};

use super::sql::{Dialect, Tx, query};
use super::{Queue, ms};

/// A heartbeat newer than this says its daemon lives (for the shared
/// rate: a daemon that dies stops counting within it).
pub const LIVE_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

/// A daemon silent this long is shown as gone: its heartbeat comes every
/// second, and its job leases run out (`queue.lease_secs`) for another
/// daemon to take over.
pub const GONE_AFTER: std::time::Duration = std::time::Duration::from_secs(15);

/// A write refused because another daemon holds the role it belongs to
/// now: this daemon stalled past its role, and the other took over.
#[derive(Debug, thiserror::Error)]
#[error("another daemon holds the role {0} now")]
pub struct Superseded(pub String);

/// One daemon run on the queue, as `status` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DaemonRow {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub stopped_at: Option<i64>,
    /// How old its heartbeat is (ms), by the database's clock.
    pub heartbeat_age_ms: i64,
    pub details: serde_json::Value,
}

impl DaemonRow {
    /// `running`, `gone` (silent past [`GONE_AFTER`]) or `stopped`.
    pub fn state(&self) -> &'static str {
        if self.stopped_at.is_some() {
            "stopped"
        } else if self.heartbeat_age_ms > ms(GONE_AFTER) {
            "gone"
        } else {
            "running"
        }
    }
}

/// Who this daemon is on the queue.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub version: String,
}

impl Member {
    /// This process, watching `watch_dir`: its id is the host and the
    /// directory (`host:1a2b3c4d`), the same across restarts, so that a
    /// daemon restarted (after a kill, say) takes its roles back at once
    /// rather than when they run out.
    pub fn this_process(watch_dir: &std::path::Path) -> Self {
        use sha2::Digest;
        let host = hostname();
        let dir = sha2::Sha256::digest(watch_dir.as_os_str().as_encoded_bytes());
        Self {
            id: format!("{host}:{}", hex::encode(&dir[..4])),
            host,
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// The host's name (`/proc/sys/kernel/hostname`, `$HOSTNAME`, or
/// "localhost").
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Dialect {
    /// The database's clock in Unix milliseconds, as SQL.
    fn now_sql(self) -> &'static str {
        match self {
            Dialect::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            Dialect::Postgres => {
                "CAST(floor(extract(epoch FROM clock_timestamp()) * 1000) AS BIGINT)"
            }
        }
    }
}

impl Queue {
    /// Writes this daemon's heartbeat (its row made on the first), and
    /// returns how many daemons live on the queue, this one included.
    ///
    /// # Errors
    /// Database errors.
    pub async fn heartbeat_member(
        &self,
        me: &Member,
        details: &serde_json::Value,
    ) -> anyhow::Result<u32> {
        let now = self.dialect.now_sql();
        let beat = query(AssertSqlSafe(format!(
            "INSERT INTO daemons (id, host, pid, version, started_at, heartbeat_at, details) \
             VALUES (?1, ?2, ?3, ?4, {now}, {now}, ?5) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = {now}, details = ?5, stopped_at = NULL, \
             started_at = CASE WHEN daemons.pid = ?3 THEN daemons.started_at ELSE {now} END, \
             pid = ?3, version = ?4"
        )))
        .bind(&me.id)
        .bind(&me.host)
        .bind(i64::from(me.pid))
        .bind(&me.version)
        .bind(details.to_string());
        // On PostgreSQL the heartbeat does not wait for the write turn: it
        // writes only this daemon's row, and one held behind a big chunk
        // would have the others count this daemon dead (`LIVE_WITHIN`). On
        // SQLite (written at start and stop only) it takes its turn.
        match self.dialect {
            Dialect::Postgres => beat.execute(&self.pool).await,
            Dialect::Sqlite => beat.execute(&mut *self.writer().await?).await,
        }
        .context("writing the daemon's heartbeat")?;
        let live: i64 = query(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM daemons WHERE stopped_at IS NULL AND heartbeat_at >= {now} - ?"
        )))
        .bind(ms(LIVE_WITHIN))
        .fetch_one(&self.pool)
        .await?
        .get(0);
        Ok(u32::try_from(live).unwrap_or(1).max(1))
    }

    /// Marks this daemon stopped (a clean stop) and gives up its roles.
    ///
    /// # Errors
    /// Database errors.
    pub async fn leave(&self, me: &Member) -> anyhow::Result<()> {
        let now = self.dialect.now_sql();
        query(AssertSqlSafe(format!(
            "UPDATE daemons SET stopped_at = {now} WHERE id = ?"
        )))
        .bind(&me.id)
        .execute(&mut *self.writer().await?)
        .await?;
        query("DELETE FROM roles WHERE holder = ?")
            .bind(&me.id)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// The daemons of the last day and any still running, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn daemons(&self) -> anyhow::Result<Vec<DaemonRow>> {
        let now = self.dialect.now_sql();
        let rows = query(AssertSqlSafe(format!(
            "SELECT id, host, pid, version, started_at, heartbeat_at, stopped_at, \
             {now} - heartbeat_at, details FROM daemons \
             WHERE stopped_at IS NULL OR heartbeat_at >= {now} - 86400000 \
             ORDER BY started_at DESC, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| DaemonRow {
                id: r.get(0),
                host: r.get(1),
                pid: r.get(2),
                version: r.get(3),
                started_at: r.get(4),
                heartbeat_at: r.get(5),
                stopped_at: r.get(6),
                heartbeat_age_ms: r.get(7),
                details: serde_json::from_str(&r.get::<String, _>(8)).unwrap_or_default(),
            })
            .collect())
    }

    /// Gives up every role (a daemon alone on its queue, at start).
    ///
    /// # Errors
    /// Database errors.
    pub async fn clear_roles(&self) -> anyhow::Result<()> {
        query("DELETE FROM roles")
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// Forgets daemons stopped or silent for a week.
    ///
    /// # Errors
    /// Database errors.
    pub async fn forget_daemons(&self) -> anyhow::Result<u64> {
        let now = self.dialect.now_sql();
        Ok(query(AssertSqlSafe(format!(
            "DELETE FROM daemons WHERE heartbeat_at < {now} - 604800000"
        )))
        .execute(&mut *self.writer().await?)
        .await?
        .rows_affected())
    }

    /// The newest pause recorded by a daemon that is not gone (see
    /// [`Queue::set_pause`]).
    pub(super) async fn live_pause(&self) -> anyhow::Result<Option<String>> {
        let now = self.dialect.now_sql();
        Ok(query(AssertSqlSafe(format!(
            "SELECT s.value FROM daemon_state s JOIN daemons d ON s.key = 'pause:' || d.id \
             WHERE d.stopped_at IS NULL AND d.heartbeat_at >= {now} - ? \
             ORDER BY s.updated_at DESC LIMIT 1"
        )))
        .bind(ms(GONE_AFTER))
        .fetch_optional(&self.pool)
        .await?
        .map(|r| r.get(0)))
    }

    /// Fences a write of `tx` that belongs to the role `name`: refused
    /// ([`Superseded`]) when another daemon holds the role now. The role's
    /// row stays locked until `tx` ends, so a daemon taking the role over
    /// waits for this write and starts from it. (On SQLite one daemon owns
    /// the queue: nothing to fence.)
    ///
    /// # Errors
    /// [`Superseded`], or database errors.
    pub(super) async fn fence_role(&self, tx: &mut Tx, name: &str) -> anyhow::Result<()> {
        if self.dialect == Dialect::Sqlite {
            return Ok(());
        }
        let now = self.dialect.now_sql();
        let row = query(AssertSqlSafe(format!(
            "SELECT holder, CASE WHEN expires_at >= {now} THEN 1 ELSE 0 END FROM roles \
             WHERE name = ? FOR UPDATE"
        )))
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
        match row {
            Some(r) if r.get::<String, _>(0) != *self.member && r.get::<i32, _>(1) == 1 => {
                Err(Superseded(name.to_string()).into())
            }
            _ => Ok(()),
        }
    }

    /// Takes or renews the role `name` for `holder` for `ttl`: true when
    /// `holder` has it now (it had it, nobody did, or the last holder's
    /// time ran out).
    ///
    /// # Errors
    /// Database errors.
    pub async fn hold_role(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> anyhow::Result<bool> {
        if self.dialect == Dialect::Sqlite {
            // One daemon per SQLite queue (its lock file): every role is
            // its own, and no write competes with intake and delivery.
            return Ok(true);
        }
        let now = self.dialect.now_sql();
        let got = query(AssertSqlSafe(format!(
            "INSERT INTO roles (name, holder, expires_at) VALUES (?1, ?2, {now} + ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = ?2, expires_at = {now} + ?3 \
             WHERE roles.holder = ?2 OR roles.expires_at < {now} RETURNING holder"
        )))
        .bind(name)
        .bind(holder)
        .bind(ms(ttl))
        .fetch_optional(&mut *self.writer().await?)
        .await
        .with_context(|| format!("taking the role {name}"))?;
        Ok(got.is_some())
    }

    /// Gives up the role `name` if `holder` has it.
    ///
    /// # Errors
    /// Database errors.
    pub async fn release_role(&self, name: &str, holder: &str) -> anyhow::Result<()> {
        if self.dialect == Dialect::Sqlite {
            return Ok(());
        }
        query("DELETE FROM roles WHERE name = ? AND holder = ?")
            .bind(name)
            .bind(holder)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }
}
