//! This daemon among the daemons on a shared (PostgreSQL) queue: a
//! heartbeat every second in the queue's `daemons` table, and the request
//! rate divided among the live ones. (On SQLite the one daemon writes its
//! row at start and stop only.)
//!
//! Rate / N rather than a budget in the database: one small write and one
//! count per daemon per second, whatever the request rate, and no database
//! round trip before a request. A daemon that joins waits until the others
//! have counted it (`throttle::SETTLE`); one that dies stops counting
//! within `queue::LIVE_WITHIN`; one that stalls sends nothing until its
//! heartbeat is fresh again.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Delivery;
use crate::queue::Dialect;

/// How often the heartbeat is written on a shared queue.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

impl Delivery {
    /// Whether several daemons may share this queue.
    pub fn shared_queue(&self) -> bool {
        self.queue.dialect() == Dialect::Postgres
    }

    /// Writes this daemon's heartbeat and takes its share of the rate.
    ///
    /// # Errors
    /// Database errors.
    pub async fn heartbeat(&self) -> anyhow::Result<()> {
        let details = serde_json::json!({
            "leases_held": self.leases_held(),
            "rate_share": self.throttle.sharing(),
            "paused": self.gate.paused().map(|p| p.reason),
        });
        let live = self.queue.heartbeat_member(&self.member, &details).await?;
        if self.shared_queue() {
            self.throttle.shared_by(live);
        }
        Ok(())
    }

    /// Heartbeats until `cancel` (beside `run`). A heartbeat that fails is
    /// retried: on a shared queue the rate limiter holds requests back
    /// meanwhile.
    pub(super) async fn membership(self, cancel: CancellationToken) {
        if !self.shared_queue() {
            // One daemon per SQLite queue (its lock file says it lives):
            // no write here competes with intake and delivery.
            return;
        }
        let mut failing = false;
        loop {
            match self.heartbeat().await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("heartbeat written again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %format!("{e:#}"), "cannot write the heartbeat");
                }
                Err(_) => {}
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(HEARTBEAT_EVERY) => {}
            }
        }
    }
}
